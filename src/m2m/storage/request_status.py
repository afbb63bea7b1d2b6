"""Following a request: its summary and, per device, the outcome and the callback's delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from m2m.storage.tables import callback_deliveries, lifecycle_requests, request_items


@dataclass(frozen=True, slots=True)
class RequestSummary:
    id: int  # internal: the console pages by it; never shown through the API
    tracking_number: str
    operation: str
    item_count: int
    accepted_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class ItemStatus:
    identifier: str
    identifier_type: str
    status: str
    result_status: str | None
    messages: list[str] | None
    finished_at: datetime | None
    delivery_status: str | None
    delivery_attempts: int | None
    delivered_at: datetime | None
    delivery_error: str | None


REQUEST_SUMMARY_COLUMNS = (
    lifecycle_requests.c.id,
    lifecycle_requests.c.tracking_number,
    lifecycle_requests.c.operation,
    lifecycle_requests.c.item_count,
    lifecycle_requests.c.accepted_at,
    lifecycle_requests.c.finished_at,
)


def find_request(conn: Connection, account_id: int, tracking_number: str) -> RequestSummary | None:
    row = conn.execute(
        select(*REQUEST_SUMMARY_COLUMNS).where(
            lifecycle_requests.c.tracking_number == tracking_number,
            lifecycle_requests.c.account_id == account_id,
        )
    ).one_or_none()
    return RequestSummary(**row._mapping) if row else None


def get_request(
    conn: Connection, account_id: int, tracking_number: str
) -> tuple[RequestSummary, list[ItemStatus]] | None:
    summary = find_request(conn, account_id, tracking_number)
    if summary is None:
        return None
    items = conn.execute(
        select(
            request_items.c.identifier,
            request_items.c.identifier_type,
            request_items.c.status,
            request_items.c.result_status,
            request_items.c.messages,
            request_items.c.finished_at,
            callback_deliveries.c.status.label("delivery_status"),
            callback_deliveries.c.attempts.label("delivery_attempts"),
            callback_deliveries.c.delivered_at,
            callback_deliveries.c.last_error.label("delivery_error"),
        )
        .select_from(
            request_items.outerjoin(
                callback_deliveries, callback_deliveries.c.item_id == request_items.c.id
            )
        )
        .where(request_items.c.request_id == summary.id)
        .order_by(request_items.c.id)
    )
    return summary, [ItemStatus(**item._mapping) for item in items]
