"""Retention: deleting finished requests whose callbacks are settled (SIM history stays), audit
events past their retention period, idempotency keys past their 24 hours, events past theirs and
the settled messages that delivered them to subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Table, delete, exists, select, tuple_

from m2m.storage.leases import PENDING
from m2m.storage.tables import (
    audit_events,
    callback_deliveries,
    events,
    idempotency_keys,
    lifecycle_requests,
    request_items,
    sim_cards,
    usage_hourly,
)


def purge_finished_requests(conn: Connection, finished_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` requests finished before ``finished_before`` whose callback
    messages are all settled (delivered or failed), with their items, messages and attempts
    (the foreign keys cascade). The SIMs' state history stays. Returns how many were deleted."""
    unsettled = (
        select(request_items.c.id)
        .join(callback_deliveries, callback_deliveries.c.item_id == request_items.c.id)
        .where(
            request_items.c.request_id == lifecycle_requests.c.id,
            callback_deliveries.c.status == PENDING,
        )
    )
    doomed = list(
        conn.execute(
            select(lifecycle_requests.c.id)
            .where(
                lifecycle_requests.c.finished_at.is_not(None),
                lifecycle_requests.c.finished_at < finished_before,
                ~exists(unsettled),
            )
            .order_by(lifecycle_requests.c.id)
            .limit(limit)
        ).scalars()
    )
    if doomed:
        conn.execute(delete(lifecycle_requests).where(lifecycle_requests.c.id.in_(doomed)))
    return len(doomed)


def _delete_oldest(
    conn: Connection,
    table: Table,
    key: Column[Any],
    when: Column[Any],
    before: datetime,
    limit: int,
) -> int:
    doomed = list(
        conn.execute(select(key).where(when < before).order_by(when).limit(limit)).scalars()
    )
    if doomed:
        conn.execute(delete(table).where(key.in_(doomed)))
    return len(doomed)


def purge_audit_events(conn: Connection, occurred_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` audit events recorded before ``occurred_before`` (the retention
    period's start), oldest first. Returns how many were deleted."""
    return _delete_oldest(
        conn, audit_events, audit_events.c.id, audit_events.c.occurred_at, occurred_before, limit
    )


def purge_idempotency_keys(conn: Connection, created_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` idempotency keys made before ``created_before``: past their 24
    hours a key replays nothing, and a request sent again with it is simply a new request."""
    doomed = conn.execute(
        select(idempotency_keys.c.account_id, idempotency_keys.c.key)
        .where(idempotency_keys.c.created_at < created_before)
        .order_by(idempotency_keys.c.created_at)
        .limit(limit)
    ).all()
    if doomed:
        conn.execute(
            delete(idempotency_keys).where(
                tuple_(idempotency_keys.c.account_id, idempotency_keys.c.key).in_(
                    [tuple(row) for row in doomed]
                )
            )
        )
    return len(doomed)


def purge_events(conn: Connection, occurred_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` of the oldest events (every account's) that occurred before
    ``occurred_before``. Returns how many were deleted. Consumers' cursors stay valid: one whose
    cursor was purged reads on from the first event after it that is still stored."""
    return _delete_oldest(conn, events, events.c.id, events.c.occurred_at, occurred_before, limit)


def purge_event_messages(conn: Connection, created_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` settled (delivered or failed) messages of event subscriptions
    queued before ``created_before``, with their attempts; the ones still pending stay. Returns
    how many were deleted."""
    doomed = list(
        conn.execute(
            select(callback_deliveries.c.id)
            .where(
                callback_deliveries.c.subscription_id.is_not(None),
                callback_deliveries.c.status.in_(["delivered", "failed"]),
                callback_deliveries.c.created_at < created_before,
            )
            .limit(limit)
        ).scalars()
    )
    if doomed:
        conn.execute(delete(callback_deliveries).where(callback_deliveries.c.id.in_(doomed)))
    return len(doomed)


def purge_usage_hours(
    conn: Connection, hour_before: datetime, first_sim_id: int, sims: int
) -> tuple[int, int | None]:
    """Delete the hourly usage before ``hour_before`` of the SIMs with ids from
    ``first_sim_id`` to the next ``sims`` SIMs'. Returns how many rows were deleted and the
    first SIM id after them (None: no SIM left). By ranges of SIMs, so that each delete reads a
    range of the primary key (SIM, hour): the hours have no index of their own, which every
    ingested record would pay for."""
    ids = list(
        conn.execute(
            select(sim_cards.c.id)
            .where(sim_cards.c.id >= first_sim_id)
            .order_by(sim_cards.c.id)
            .limit(sims + 1)
        ).scalars()
    )
    if not ids:
        return 0, None
    last = ids[min(sims, len(ids)) - 1]
    result = conn.execute(
        delete(usage_hourly).where(
            usage_hourly.c.sim_id.between(first_sim_id, last), usage_hourly.c.hour < hour_before
        )
    )
    return result.rowcount, ids[sims] if len(ids) > sims else None
