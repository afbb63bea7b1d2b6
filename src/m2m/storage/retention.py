"""Retention: deleting finished requests whose callbacks are settled; SIM history stays."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, exists, select

from m2m.storage.leases import PENDING
from m2m.storage.tables import callback_deliveries, lifecycle_requests, request_items


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
