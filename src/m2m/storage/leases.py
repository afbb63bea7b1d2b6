"""What the item queue and the callback outbox share: leasing rows nobody else holds, and the
status literals their partial indexes are written against."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, String, Table, literal_column, update

# Literals, not bound parameters: SQLite uses a partial index only when the query's condition
# matches the index's WHERE clause textually.
DONE: ColumnElement[str] = literal_column("'done'", String)
PENDING: ColumnElement[str] = literal_column("'pending'", String)


def lease(conn: Connection, table: Table, candidates: Select[Any], **values: Any) -> list[Any]:
    """Set ``values`` on the candidate rows nobody else holds; return their ids.

    PostgreSQL: the candidates are locked with SKIP LOCKED, so concurrent workers take disjoint
    rows. SQLite: write transactions are serialised (BEGIN IMMEDIATE), which gives the same.
    """
    if conn.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    id_column = table.c.id
    return list(
        conn.execute(
            update(table)
            .where(id_column.in_(candidates.scalar_subquery()))
            .values(**values)
            .returning(id_column)
        ).scalars()
    )
