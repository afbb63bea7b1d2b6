"""Emptying the database for the sandbox's reset: every table's rows go, and ids count from 1
again, so that the demo data seeded next gets the very ids (and so the same callback signing
secret, derived from the account's id) a fresh sandbox has.

Only ``m2m.sandbox.reset`` calls this, in sandbox mode; the schema (and Alembic's version)
stays.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from m2m.storage.tables import metadata


def empty_all_tables(conn: Connection) -> None:
    """Delete every row of every table, in the caller's (write) transaction."""
    tables = metadata.sorted_tables
    if conn.dialect.name == "postgresql":
        # One statement for all of them: TRUNCATE is far cheaper than DELETE plus a vacuum's
        # worth of dead rows, and RESTART IDENTITY puts every id sequence back to 1.
        names = ", ".join(conn.dialect.identifier_preparer.format_table(t) for t in tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        return
    # SQLite: no AUTOINCREMENT keyword in this schema, so an emptied table's next rowid is 1.
    # Children first, for the foreign keys.
    for table in reversed(tables):
        conn.execute(table.delete())
