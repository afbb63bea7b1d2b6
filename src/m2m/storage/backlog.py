"""What is waiting, for the operator: items and callback messages not yet done, how old the
oldest is, who has the most, which receivers' breakers are open. Read by the metrics at scrape
time and by ``m2m admin status``; every count walks a partial index of open rows only, so its
cost grows with the backlog, not with the history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from m2m.storage.leases import CLAIMED, PENDING
from m2m.storage.tables import (
    accounts,
    callback_configs,
    callback_deliveries,
    lifecycle_requests,
    request_items,
)


@dataclass(frozen=True, slots=True)
class Backlog:
    items_pending: int  # accepted, not yet leased by a worker
    items_claimed: int  # leased by a worker, being executed (or its worker died)
    oldest_open_request_at: datetime | None  # accepted_at of the oldest unfinished request
    messages_pending: int  # callback messages not yet delivered nor given up
    oldest_message_at: datetime | None  # created_at of the oldest of them
    breakers_open: int  # receivers paused by their circuit breaker (open, or probing)


def backlog(conn: Connection) -> Backlog:
    # Two counts, each over its own partial index (status = 'pending', status = 'claimed').
    items = {
        str(status): int(count)
        for status, count in conn.execute(
            select(request_items.c.status, func.count())
            .where(request_items.c.status == PENDING)
            .group_by(request_items.c.status)
            .union_all(
                select(request_items.c.status, func.count())
                .where(request_items.c.status == CLAIMED)
                .group_by(request_items.c.status)
            )
        )
    }
    oldest_request = (
        select(func.min(lifecycle_requests.c.id))
        .where(lifecycle_requests.c.finished_at.is_(None))
        .scalar_subquery()
    )
    oldest_open_request_at = conn.execute(
        select(lifecycle_requests.c.accepted_at).where(lifecycle_requests.c.id == oldest_request)
    ).scalar()
    messages, oldest_message_at = conn.execute(
        select(func.count(), func.min(callback_deliveries.c.created_at)).where(
            callback_deliveries.c.status == PENDING
        )
    ).one()
    breakers_open = conn.execute(
        select(func.count()).where(callback_configs.c.breaker_open_until.is_not(None))
    ).scalar_one()
    return Backlog(
        items_pending=int(items.get("pending", 0)),
        items_claimed=int(items.get("claimed", 0)),
        oldest_open_request_at=oldest_open_request_at,
        messages_pending=int(messages),
        oldest_message_at=oldest_message_at,
        breakers_open=int(breakers_open),
    )


@dataclass(frozen=True, slots=True)
class AccountBacklog:
    account_id: int
    name: str
    messages_pending: int
    breaker_open_until: datetime | None


def messages_waiting_by_account(conn: Connection, limit: int) -> list[AccountBacklog]:
    """The ``limit`` accounts with the most callback messages waiting, most first."""
    waiting = (
        select(callback_deliveries.c.account_id, func.count().label("pending"))
        .where(callback_deliveries.c.status == PENDING)
        .group_by(callback_deliveries.c.account_id)
        .subquery("waiting")
    )
    rows = conn.execute(
        select(
            waiting.c.account_id,
            accounts.c.name,
            waiting.c.pending,
            callback_configs.c.breaker_open_until,
        )
        .select_from(
            waiting.join(accounts, accounts.c.id == waiting.c.account_id).outerjoin(
                callback_configs, callback_configs.c.account_id == waiting.c.account_id
            )
        )
        .order_by(waiting.c.pending.desc(), waiting.c.account_id)
        .limit(limit)
    )
    return [AccountBacklog(r[0], r[1], int(r[2]), r[3]) for r in rows]


def open_breakers(conn: Connection) -> list[tuple[int, str, datetime]]:
    """(account id, callback URL, open until) of every receiver paused by its breaker."""
    rows = conn.execute(
        select(
            callback_configs.c.account_id,
            callback_configs.c.url,
            callback_configs.c.breaker_open_until,
        )
        .where(callback_configs.c.breaker_open_until.is_not(None))
        .order_by(callback_configs.c.account_id)
    )
    return [(r[0], r[1] or "", r[2]) for r in rows]
