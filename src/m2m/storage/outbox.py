"""The callback outbox: messages written with their item's outcome, leased when due, each
attempt recorded with the next retry; replayed or made due again on demand."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, insert, select, update

from m2m.storage.leases import PENDING, lease
from m2m.storage.notify import DELIVERIES, announce
from m2m.storage.tables import (
    callback_attempts,
    callback_configs,
    callback_deliveries,
    lifecycle_requests,
    request_items,
)


@dataclass(frozen=True, slots=True)
class DueDelivery:
    id: str
    account_id: int
    payload: dict[str, Any]
    attempts: int
    callback_token: str
    url: str | None
    headers: dict[str, str] | None
    signing_key_version: int | None
    signing_key_rotated_at: datetime | None


def claim_deliveries(
    conn: Connection, claim_id: str, now: datetime, until: datetime, limit: int
) -> list[DueDelivery]:
    """Lease up to ``limit`` due messages until ``until`` (past the attempt's timeout)."""
    candidates: Select[Any] = (
        select(callback_deliveries.c.id)
        .where(
            callback_deliveries.c.status == PENDING, callback_deliveries.c.next_attempt_at <= now
        )
        .order_by(callback_deliveries.c.next_attempt_at)
        .limit(limit)
    )
    claimed = lease(conn, callback_deliveries, candidates, next_attempt_at=until, claim_id=claim_id)
    if not claimed:
        return []
    rows = conn.execute(
        select(
            callback_deliveries.c.id,
            callback_deliveries.c.account_id,
            callback_deliveries.c.payload,
            callback_deliveries.c.attempts,
            lifecycle_requests.c.callback_token,
            callback_configs.c.url,
            callback_configs.c.headers,
            callback_configs.c.signing_key_version,
            callback_configs.c.signing_key_rotated_at,
        )
        .select_from(
            callback_deliveries.join(request_items)
            .join(lifecycle_requests)
            .outerjoin(
                callback_configs,
                callback_configs.c.account_id == callback_deliveries.c.account_id,
            )
        )
        .where(callback_deliveries.c.id.in_(claimed))
    )
    return [DueDelivery(**row._mapping) for row in rows]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    delivery_id: str
    attempted_at: datetime
    url: str | None
    status_code: int | None
    error: str | None
    latency_ms: int | None
    delivered: bool
    next_attempt_at: datetime | None  # None with delivered=False: give up


def record_attempts(conn: Connection, records: Sequence[tuple[str, AttemptRecord]]) -> None:
    """Record attempts, each under the claim it was made with (a stale claim records nothing
    on the message, only the attempt)."""
    if not records:
        return
    conn.execute(
        insert(callback_attempts),
        [
            {
                "delivery_id": r.delivery_id,
                "attempted_at": r.attempted_at,
                "url": r.url,
                "status_code": r.status_code,
                "error": r.error,
                "latency_ms": r.latency_ms,
            }
            for _claim, r in records
        ],
    )
    conn.execute(
        update(callback_deliveries)
        .where(
            callback_deliveries.c.id == bindparam("b_id"),
            callback_deliveries.c.claim_id == bindparam("b_claim"),
        )
        .values(
            status=bindparam("b_status"),
            attempts=callback_deliveries.c.attempts + 1,
            next_attempt_at=bindparam("b_next", type_=callback_deliveries.c.next_attempt_at.type),
            last_error=bindparam("b_error"),
            delivered_at=bindparam("b_delivered_at", type_=callback_deliveries.c.delivered_at.type),
            claim_id=None,
        ),
        [
            {
                "b_id": r.delivery_id,
                "b_claim": claim_id,
                "b_status": "delivered"
                if r.delivered
                else ("pending" if r.next_attempt_at else "failed"),
                "b_next": r.next_attempt_at or r.attempted_at,
                "b_error": None if r.delivered else (r.error or f"HTTP {r.status_code}")[:500],
                "b_delivered_at": r.attempted_at if r.delivered else None,
            }
            for claim_id, r in records
        ],
    )


def make_deliveries_due(conn: Connection, account_id: int, now: datetime) -> int:
    """Messages waiting for a callback URL (or a retry) go out now: the account just set one."""
    result = conn.execute(
        update(callback_deliveries)
        .where(
            callback_deliveries.c.account_id == account_id,
            callback_deliveries.c.status == PENDING,
            callback_deliveries.c.claim_id.is_(None),
            callback_deliveries.c.next_attempt_at > now,
        )
        .values(next_attempt_at=now)
    )
    if result.rowcount:
        announce(conn, DELIVERIES)
    return int(result.rowcount)


def redeliver(conn: Connection, account_id: int, delivery_id: str, now: datetime) -> bool:
    """Send a message again (replay), whatever its state, from a fresh retry schedule."""
    result = conn.execute(
        update(callback_deliveries)
        .where(
            callback_deliveries.c.id == delivery_id,
            callback_deliveries.c.account_id == account_id,
        )
        .values(status="pending", attempts=0, next_attempt_at=now, claim_id=None)
    )
    if result.rowcount:
        announce(conn, DELIVERIES)
    return result.rowcount == 1
