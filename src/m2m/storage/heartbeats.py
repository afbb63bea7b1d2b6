"""Workers' heartbeats: each running worker's row, rewritten every few seconds, so that an
operator (``m2m admin status``) sees which workers are alive, since when, and what each holds,
whichever host they run on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select, update

from m2m.storage.tables import worker_heartbeats

HEARTBEAT_SECONDS = 5.0  # how often a running worker writes its row
# A worker whose row is older than this is counted dead (three missed beats).
ALIVE_WITHIN = timedelta(seconds=3 * HEARTBEAT_SECONDS)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    name: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    items_held: int
    messages_held: int


def beat(conn: Connection, heartbeat: Heartbeat) -> None:
    """Write ``heartbeat`` (its worker's row, created on the first beat)."""
    values = {
        "seen_at": heartbeat.seen_at,
        "items_held": heartbeat.items_held,
        "messages_held": heartbeat.messages_held,
    }
    found = conn.execute(
        update(worker_heartbeats).where(worker_heartbeats.c.name == heartbeat.name).values(values)
    )
    if not found.rowcount:
        # Only its own worker writes a row, so nothing else can insert it meanwhile.
        conn.execute(
            insert(worker_heartbeats).values(
                name=heartbeat.name,
                host=heartbeat.host,
                pid=heartbeat.pid,
                started_at=heartbeat.started_at,
                **values,
            )
        )


def forget(conn: Connection, name: str) -> None:
    """A worker stopping cleanly removes its row."""
    conn.execute(delete(worker_heartbeats).where(worker_heartbeats.c.name == name))


def heartbeats(conn: Connection) -> list[Heartbeat]:
    """Every worker's last heartbeat, the most recently seen first."""
    rows = conn.execute(
        select(worker_heartbeats).order_by(
            worker_heartbeats.c.seen_at.desc(), worker_heartbeats.c.name
        )
    )
    return [Heartbeat(**row._mapping) for row in rows]


def forget_older_than(conn: Connection, before: datetime) -> int:
    """Drop the rows of workers not seen since ``before`` (killed ones); returns how many."""
    return conn.execute(
        delete(worker_heartbeats).where(worker_heartbeats.c.seen_at < before)
    ).rowcount
