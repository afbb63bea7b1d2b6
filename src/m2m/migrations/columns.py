"""Adding columns to a table that others refer to, in place.

Alembic's batch mode on SQLite rebuilds a table to add a check constraint (create a copy, copy
the rows, drop the original, rename): with foreign keys on, dropping ``accounts`` deletes every
row that refers to an account through ON DELETE CASCADE — every SIM, key and token. A column
and its check are therefore added with ``ALTER TABLE … ADD COLUMN`` on both databases: SQLite
takes a column's check there (as a column constraint), PostgreSQL as a table constraint after.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op


def add_checked_columns(table: str, columns: Sequence[tuple[str, str, str | None]]) -> None:
    """Add each (name, SQL definition, check or None) to ``table`` without rebuilding it; the
    check is named ``ck_<table>_<name>``, as the naming convention of ``storage.tables``."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, definition, check in columns:
        constraint = f" CONSTRAINT ck_{table}_{name} CHECK ({check})" if check and sqlite else ""
        op.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}{constraint}")
        if check and not sqlite:
            op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, check)


def drop_checked_columns(table: str, columns: Sequence[tuple[str, str, str | None]]) -> None:
    """Undo ``add_checked_columns`` where it can be done in place: PostgreSQL. On SQLite a
    column a constraint names cannot be dropped without the rebuild above, so the columns stay
    (unused by the older code)."""
    if op.get_bind().dialect.name == "sqlite":
        return
    for name, _definition, check in reversed(columns):
        if check:
            op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
        op.drop_column(table, name)
