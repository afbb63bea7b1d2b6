"""The console's view of an account's lifecycle requests, their results and callback attempts,
and the figures of its overview. Every query is scoped by the account."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, select

from m2m.storage.request_status import REQUEST_SUMMARY_COLUMNS, RequestSummary
from m2m.storage.tables import (
    callback_attempts,
    callback_deliveries,
    lifecycle_requests,
    request_items,
    sim_cards,
)


@dataclass(frozen=True, slots=True)
class Progress:
    total: int
    done: int
    succeeded: int
    failed: int
    delivered: int
    delivery_failed: int


@dataclass(frozen=True, slots=True)
class ItemRow:
    id: int
    identifier: str
    identifier_type: str
    sim_id: int | None
    msisdn: str | None  # the SIM's, whatever identifier the request used
    status: str
    result_status: str | None
    messages: list[str] | None
    from_state: str | None
    to_state: str | None
    finished_at: datetime | None
    delivery_id: str | None
    delivery_status: str | None
    delivery_attempts: int | None
    delivery_error: str | None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    delivery_id: str
    attempted_at: datetime
    url: str | None
    status_code: int | None
    error: str | None
    latency_ms: int | None


def list_requests(
    conn: Connection, account_id: int, *, before_id: int | None = None, limit: int = 50
) -> tuple[list[RequestSummary], bool]:
    """The account's requests, newest first, and whether older ones exist (keyset by id)."""
    query = select(*REQUEST_SUMMARY_COLUMNS).where(lifecycle_requests.c.account_id == account_id)
    if before_id is not None:
        query = query.where(lifecycle_requests.c.id < before_id)
    rows = conn.execute(query.order_by(lifecycle_requests.c.id.desc()).limit(limit + 1))
    found = [RequestSummary(**r._mapping) for r in rows]
    return found[:limit], len(found) > limit


def _count_where(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def progress_of(conn: Connection, request_ids: Sequence[int]) -> dict[int, Progress]:
    """Per request: items done, their outcomes, and their messages' delivery."""
    if not request_ids:
        return {}
    rows = conn.execute(
        select(
            request_items.c.request_id,
            func.count(),
            _count_where(request_items.c.status == "done"),
            _count_where(request_items.c.result_status == "Success"),
            _count_where(request_items.c.result_status == "Failure"),
            _count_where(callback_deliveries.c.status == "delivered"),
            _count_where(callback_deliveries.c.status == "failed"),
        )
        .select_from(
            request_items.outerjoin(
                callback_deliveries, callback_deliveries.c.item_id == request_items.c.id
            )
        )
        .where(request_items.c.request_id.in_(list(request_ids)))
        .group_by(request_items.c.request_id)
    )
    return {r[0]: Progress(*(int(v) for v in r[1:])) for r in rows}


def items_of(
    conn: Connection, request_id: int, *, after_id: int | None = None, limit: int = 100
) -> tuple[list[ItemRow], bool]:
    """A page of the request's devices in order, with their callback message's state."""
    query = (
        select(
            request_items.c.id,
            request_items.c.identifier,
            request_items.c.identifier_type,
            request_items.c.sim_id,
            sim_cards.c.msisdn,
            request_items.c.status,
            request_items.c.result_status,
            request_items.c.messages,
            request_items.c.from_state,
            request_items.c.to_state,
            request_items.c.finished_at,
            callback_deliveries.c.id.label("delivery_id"),
            callback_deliveries.c.status.label("delivery_status"),
            callback_deliveries.c.attempts.label("delivery_attempts"),
            callback_deliveries.c.last_error.label("delivery_error"),
        )
        .select_from(
            request_items.outerjoin(
                callback_deliveries, callback_deliveries.c.item_id == request_items.c.id
            ).outerjoin(sim_cards, sim_cards.c.id == request_items.c.sim_id)
        )
        .where(request_items.c.request_id == request_id)
    )
    if after_id is not None:
        query = query.where(request_items.c.id > after_id)
    rows = [
        ItemRow(**r._mapping)
        for r in conn.execute(query.order_by(request_items.c.id).limit(limit + 1))
    ]
    return rows[:limit], len(rows) > limit


def attempts_of(conn: Connection, delivery_ids: Sequence[str]) -> dict[str, list[AttemptRow]]:
    if not delivery_ids:
        return {}
    rows = conn.execute(
        select(
            callback_attempts.c.delivery_id,
            callback_attempts.c.attempted_at,
            callback_attempts.c.url,
            callback_attempts.c.status_code,
            callback_attempts.c.error,
            callback_attempts.c.latency_ms,
        )
        .where(callback_attempts.c.delivery_id.in_(list(delivery_ids)))
        .order_by(callback_attempts.c.id)
    )
    found: dict[str, list[AttemptRow]] = {}
    for r in rows:
        found.setdefault(r.delivery_id, []).append(AttemptRow(**r._mapping))
    return found


# --- the overview ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutcomeCount:
    hour: str  # "YYYY-MM-DD HH", UTC
    outcome: str  # Success, Failure or Pending
    devices: int


def _utc_hour(conn: Connection, column: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return func.strftime("%Y-%m-%d %H", column)  # SQLite keeps naive UTC


def outcomes_since(conn: Connection, account_id: int, since: datetime) -> list[OutcomeCount]:
    """Devices of the account's requests accepted since ``since``, per hour and outcome."""
    outcome = func.coalesce(request_items.c.result_status, "Pending")
    hour = _utc_hour(conn, lifecycle_requests.c.accepted_at)
    rows = conn.execute(
        select(hour, outcome, func.count())
        .select_from(lifecycle_requests.join(request_items))
        .where(
            lifecycle_requests.c.account_id == account_id,
            lifecycle_requests.c.accepted_at >= since,
        )
        .group_by(hour, outcome)
    )
    return [OutcomeCount(r[0], r[1], int(r[2])) for r in rows]


@dataclass(frozen=True, slots=True)
class DeliveryFigures:
    delivered: int
    failed: int
    pending: int
    latencies_ms: list[int]  # of the successful attempts


def deliveries_since(conn: Connection, account_id: int, since: datetime) -> DeliveryFigures:
    """The account's callback messages created since ``since``, and their attempts' latency."""
    counts: dict[str, int] = {
        r[0]: int(r[1])
        for r in conn.execute(
            select(callback_deliveries.c.status, func.count())
            .where(
                callback_deliveries.c.account_id == account_id,
                callback_deliveries.c.created_at >= since,
            )
            .group_by(callback_deliveries.c.status)
        )
    }
    latencies = conn.execute(
        select(callback_attempts.c.latency_ms)
        .select_from(callback_attempts.join(callback_deliveries))
        .where(
            callback_deliveries.c.account_id == account_id,
            callback_deliveries.c.created_at >= since,
            callback_attempts.c.latency_ms.is_not(None),
        )
        .limit(100_000)  # a day's sample is plenty for percentiles
    ).scalars()
    return DeliveryFigures(
        delivered=int(counts.get("delivered", 0)),
        failed=int(counts.get("failed", 0)),
        pending=int(counts.get("pending", 0)),
        latencies_ms=[int(v) for v in latencies],
    )
