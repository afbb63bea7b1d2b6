"""Emptying the database for the sandbox's reset: every table's rows go, and ids count from 1
again, so that the demo data seeded next gets the very ids (and so the same callback signing
secret, derived from the account's id) a fresh sandbox has.

Only ``m2m.sandbox.reset`` calls this, in sandbox mode; the schema (and Alembic's version)
stays.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from m2m.storage.tables import metadata

# What the running processes say about themselves, not the sandbox's data: kept, so that a
# reset does not make a live worker look gone until its next heartbeat.
KEPT = frozenset({"worker_heartbeats"})


def empty_all_tables(conn: Connection) -> None:
    """Delete every row of every table (but ``KEPT``), in the caller's (write) transaction."""
    tables = [table for table in metadata.sorted_tables if table.name not in KEPT]
    if conn.dialect.name == "postgresql":
        # Not TRUNCATE … RESTART IDENTITY: it replaces every table's files, which took 370 ms
        # for these few rows where DELETE takes 7. The tables are locked first (reads go on), so
        # that no write of the API or the worker lands between the deletes and the new seed.
        preparer = conn.dialect.identifier_preparer
        names = ", ".join(preparer.format_table(table) for table in tables)
        conn.execute(text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))
    # Children first, for the foreign keys.
    for table in reversed(tables):
        conn.execute(table.delete())
    if conn.dialect.name == "postgresql":
        # setval is not undone by a rollback: should the reset fail after this, ids would
        # collide until the next reset succeeds (a sandbox's risk, for 1 statement instead of
        # 14 ALTER SEQUENCE … RESTART, 18 ms against 47).
        serial = [table for table in tables if table.autoincrement_column is not None]
        restarts = ", ".join(
            f"setval(pg_get_serial_sequence('{table.name}', "
            f"'{table.autoincrement_column.name}'), 1, false)"  # type: ignore[union-attr]
            for table in serial
        )
        conn.execute(text(f"SELECT {restarts}"))
    # SQLite: no AUTOINCREMENT keyword in this schema, so an emptied table's next rowid is 1.
