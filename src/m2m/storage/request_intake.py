"""Accepting a lifecycle request: its devices resolved to SIMs, the request and one item per
device inserted in the caller's transaction (the first step of a request's journey)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from m2m.storage.notify import ITEMS, announce
from m2m.storage.tables import lifecycle_requests, request_items, sim_cards

_LOOKUP_CHUNK = 500
_ACCEPT_LOCK_NAMESPACE = 0x4D324D  # "M2M": first key of the two-key advisory lock


def serialize_acceptance(conn: Connection, account_id: int) -> None:
    """Make an account's requests commit in the order their ids are allocated.

    Per-SIM order is acceptance order, read as ``request_items.id`` order. On PostgreSQL, two
    concurrent acceptances could commit in the opposite order of their ids, and a worker would
    then run the later one first; a transaction-scoped advisory lock per account prevents it.
    SQLite needs nothing: its write transactions are serialised already (BEGIN IMMEDIATE).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_ACCEPT_LOCK_NAMESPACE, account_id)))


def resolve_sims(
    conn: Connection, account_id: int, column: str, identifiers: Sequence[str]
) -> dict[str, int]:
    """identifier -> SIM id, for the account's SIMs among ``identifiers`` (by ``column``)."""
    found: dict[str, int] = {}
    key = sim_cards.c[column]
    unique = list(dict.fromkeys(identifiers))
    for start in range(0, len(unique), _LOOKUP_CHUNK):
        chunk = unique[start : start + _LOOKUP_CHUNK]
        rows = conn.execute(
            select(key, sim_cards.c.id).where(sim_cards.c.account_id == account_id, key.in_(chunk))
        )
        found.update({row[0]: row[1] for row in rows})
    return found


def create_request(
    conn: Connection,
    *,
    tracking_number: str,
    account_id: int,
    operation: str,
    callback_token: str,
    items: Sequence[dict[str, Any]],
    now: datetime,
    http_request_id: str | None = None,
    cause: str = "request",
) -> int:
    """Insert the request and its items (keys: identifier, identifier_type, sim_id);
    ``http_request_id`` is the X-Request-ID of the call that made it, ``cause`` why it was made
    (``m2m.events.Cause``)."""
    row_id = conn.execute(
        insert(lifecycle_requests).values(
            tracking_number=tracking_number,
            account_id=account_id,
            operation=operation,
            callback_token=callback_token,
            item_count=len(items),
            accepted_at=now,
            http_request_id=http_request_id,
            cause=cause,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    conn.execute(insert(request_items), [{**item, "request_id": row_id} for item in items])
    announce(conn, ITEMS)
    return int(row_id)
