"""Waking workers in other processes when work arrives, through PostgreSQL's LISTEN/NOTIFY.

Storage announces new items and due messages (``storage.requests.announce``) inside the
transaction that creates them; PostgreSQL delivers the notification at commit, to every
listening worker, so a standalone worker starts within milliseconds instead of at its next poll.
Polling stays as the safety net: a notification sent while a worker was (re)connecting is lost,
and SQLite has no such channel (there the API's embedded worker is woken in-process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
from sqlalchemy import Engine

from m2m.storage.requests import WORK_CHANNEL

log = logging.getLogger("m2m.wakeup")
RECONNECT_SECONDS = 5.0
_CHECK_STOP_SECONDS = 1.0  # how often a quiet listener looks at its stop event


def conninfo(engine: Engine) -> str:
    """libpq's form of the engine's URL (SQLAlchemy's names the driver in the scheme)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(engine: Engine, wake: dict[str, Callable[[], None]], stop: asyncio.Event) -> None:
    """Until ``stop``: call ``wake[payload]`` for each notification on the work channel."""
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
