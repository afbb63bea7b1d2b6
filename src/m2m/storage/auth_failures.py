"""Failed authentications per throttle key, shared by every process: the console's logins and
the API's presented credentials. Only failures write here; a success never reads it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from m2m.storage.tables import auth_failures


def recent_failures(conn: Connection, key: str, since: datetime) -> list[datetime]:
    """Times of the key's failures since ``since``, oldest first."""
    rows = conn.execute(
        select(auth_failures.c.failed_at)
        .where(
            auth_failures.c.throttle_key == key,
            auth_failures.c.failed_at > since,
        )
        .order_by(auth_failures.c.failed_at)
    )
    return list(rows.scalars())


def add_failures(conn: Connection, keys: list[str], now: datetime) -> None:
    conn.execute(insert(auth_failures), [{"throttle_key": k, "failed_at": now} for k in keys])


def clear_failures(conn: Connection, key: str) -> None:
    conn.execute(delete(auth_failures).where(auth_failures.c.throttle_key == key))


def forget_failures_before(conn: Connection, before: datetime, key_prefix: str) -> None:
    """Delete the failures of keys starting with ``key_prefix`` (one throttle's keys: each
    counts over its own period) that happened at or before ``before``."""
    conn.execute(
        delete(auth_failures).where(
            auth_failures.c.throttle_key.startswith(key_prefix, autoescape=True),
            auth_failures.c.failed_at <= before,
        )
    )
