"""Reading the event log straight from the database (no API), for tests of who writes it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from m2m.storage.tables import events


def stored_events(engine: Engine, account_id: int | None = None) -> list[dict[str, Any]]:
    """Every stored event (of one account, if given), in id order, as plain dicts."""
    query = select(events).order_by(events.c.id)
    if account_id is not None:
        query = query.where(events.c.account_id == account_id)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def of_type(found: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in found if e["type"] == event_type]
