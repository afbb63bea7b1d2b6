"""Waking workers in other processes when work arrives, through PostgreSQL's LISTEN/NOTIFY.

Storage announces new items and due messages (``announce``) inside the transaction that creates
them; PostgreSQL delivers the notification at commit, to every
listening worker, so a standalone worker starts within milliseconds instead of at its next poll.
Polling stays as the safety net: a notification sent while a worker was (re)connecting is lost,
and SQLite has no such channel (there the API's embedded worker is woken in-process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import Connection, Engine, func, select

log = logging.getLogger("m2m.wakeup")
WORK_CHANNEL = "m2m_work"
ITEMS = "items"
DELIVERIES = "deliveries"
RECONNECT_SECONDS = 5.0
_CHECK_STOP_SECONDS = 1.0  # how often a quiet listener looks at its stop event


def announce(conn: Connection, what: str) -> None:
    """Tell listening workers that ``what`` (ITEMS or DELIVERIES) is ready, when the caller's
    transaction commits; PostgreSQL only (SQLite has no channel: its workers poll)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_notify(WORK_CHANNEL, what)))


def conninfo(engine: Engine) -> str:
    """libpq's form of the engine's URL (SQLAlchemy's names the driver in the scheme)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(engine: Engine, wake: dict[str, Callable[[], None]], stop: asyncio.Event) -> None:
    """Until ``stop``: call ``wake[payload]`` for each notification on the work channel.
    Returns at once on a database without notifications (SQLite)."""
    if engine.dialect.name != "postgresql":
        return
    import psycopg  # here: every admin command imports storage, and psycopg takes 0.1 s to load

    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(
                conninfo(engine), autocommit=True
            ) as conn:
                await conn.execute(f"LISTEN {WORK_CHANNEL}")
                while not stop.is_set():
                    async for note in conn.notifies(timeout=_CHECK_STOP_SECONDS):
                        action = wake.get(note.payload)
                        if action is not None:
                            action()
        except (psycopg.Error, OSError) as error:
            log.warning("work notifications unavailable (%s); polling until reconnected", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RECONNECT_SECONDS)
