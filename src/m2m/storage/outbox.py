"""The callback outbox: messages written with their item's outcome, leased when due, each
attempt recorded with the next retry; replayed or made due again on demand.

What to claim is decided above (``m2m.callbacks.dispatch``: fair shares per account, breakers);
this module answers its questions (which accounts have messages waiting, each one's due
messages) and leases what it picked."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, insert, or_, select, update

from m2m.storage.callback_configs import BreakerState, breaker_state
from m2m.storage.leases import (
    HEADS_PER_STATEMENT,
    PENDING,
    distinct_values,
    heads_statement,
    lease_statement,
    read_heads,
)
from m2m.storage.notify import DELIVERIES, announce
from m2m.storage.tables import (
    callback_attempts,
    callback_configs,
    callback_deliveries,
    event_subscriptions,
    lifecycle_requests,
    request_items,
)


@dataclass(frozen=True, slots=True)
class DueDelivery:
    id: str
    account_id: int
    payload: dict[str, Any]
    attempts: int
    callback_token: str | None  # a status message's; None for an event
    url: str | None
    headers: dict[str, str] | None
    signing_key_version: int | None
    signing_key_rotated_at: datetime | None
    # An event for a subscription: the subscription (its endpoint: url, headers and signing
    # version above are its own), the event (its id is the webhook-id) and the endpoint's
    # breaker. None for a lifecycle status message.
    subscription_id: int | None = None
    subscription_public_id: str | None = None
    event_id: int | None = None
    breaker: BreakerState | None = None
    http_request_id: str | None = None  # the X-Request-ID of the call that made the request


@dataclass(frozen=True, slots=True)
class PendingAccount:
    account_id: int
    breaker: BreakerState  # of its callback URL (closed when it has no configuration)


_PENDING = distinct_values(
    callback_deliveries.c.account_id, callback_deliveries.c.status == PENDING
).subquery("pending")
_PENDING_ACCOUNTS = select(
    _PENDING.c.value.label("account_id"),
    callback_configs.c.breaker_failures,
    callback_configs.c.breaker_trips,
    callback_configs.c.breaker_open_until,
    callback_configs.c.breaker_probe_id,
).select_from(
    _PENDING.outerjoin(callback_configs, callback_configs.c.account_id == _PENDING.c.value)
)


def pending_accounts(conn: Connection) -> list[PendingAccount]:
    """The accounts with pending messages, ascending, each with its URL's breaker: a loose index
    scan (``leases.distinct_values``), whose cost grows with the accounts, not the messages."""
    found = [
        PendingAccount(
            int(row.account_id),
            BreakerState(
                row.breaker_failures or 0,
                row.breaker_trips or 0,
                row.breaker_open_until,
                row.breaker_probe_id,
            ),
        )
        for row in conn.execute(_PENDING_ACCOUNTS)
    ]
    return sorted(found, key=lambda pending: pending.account_id)


def _due_head(param: Callable[[str], Any]) -> Select[Any]:
    """An account's first due messages (the oldest due first): an index range read."""
    return (
        select(callback_deliveries.c.id, callback_deliveries.c.next_attempt_at)
        .where(
            callback_deliveries.c.status == PENDING,
            callback_deliveries.c.account_id == param("account"),
            callback_deliveries.c.next_attempt_at <= bindparam("now"),
        )
        .order_by(callback_deliveries.c.next_attempt_at)
        .limit(param("quota"))
    )


@functools.lru_cache(maxsize=HEADS_PER_STATEMENT)
def _due_heads(count: int) -> Select[Any]:
    """``count`` accounts' heads, each message with what sending it takes (read before the
    lease: the lease re-checks that each is still due, and a message no other worker has
    leased since it was read has not changed)."""
    heads = heads_statement(_due_head, count).subquery("heads")
    return select(
        callback_deliveries.c.id,
        callback_deliveries.c.account_id,
        callback_deliveries.c.payload,
        callback_deliveries.c.attempts,
        lifecycle_requests.c.callback_token,
        callback_configs.c.url,
        callback_configs.c.headers,
        callback_configs.c.signing_key_version,
        callback_configs.c.signing_key_rotated_at,
        callback_deliveries.c.subscription_id,
        callback_deliveries.c.event_id,
        event_subscriptions.c.public_id.label("sub_public_id"),
        event_subscriptions.c.url.label("sub_url"),
        event_subscriptions.c.headers.label("sub_headers"),
        event_subscriptions.c.signing_key_version.label("sub_signing_key_version"),
        event_subscriptions.c.signing_key_rotated_at.label("sub_signing_key_rotated_at"),
        event_subscriptions.c.breaker_failures,
        event_subscriptions.c.breaker_trips,
        event_subscriptions.c.breaker_open_until,
        event_subscriptions.c.breaker_probe_id,
        lifecycle_requests.c.http_request_id,
        heads.c.next_attempt_at,
    ).select_from(
        heads.join(callback_deliveries, callback_deliveries.c.id == heads.c.id)
        .outerjoin(request_items, request_items.c.id == callback_deliveries.c.item_id)
        .outerjoin(lifecycle_requests, lifecycle_requests.c.id == request_items.c.request_id)
        .outerjoin(
            callback_configs, callback_configs.c.account_id == callback_deliveries.c.account_id
        )
        .outerjoin(
            event_subscriptions,
            event_subscriptions.c.id == callback_deliveries.c.subscription_id,
        )
    )


def _due_delivery(row: Any) -> DueDelivery:
    if row.subscription_id is None:
        return DueDelivery(
            row.id,
            row.account_id,
            row.payload,
            row.attempts,
            row.callback_token,
            row.url,
            row.headers,
            row.signing_key_version,
            row.signing_key_rotated_at,
            http_request_id=row.http_request_id,
        )
    return DueDelivery(
        row.id,
        row.account_id,
        row.payload,
        row.attempts,
        None,
        row.sub_url,
        row.sub_headers,
        row.sub_signing_key_version,
        row.sub_signing_key_rotated_at,
        subscription_id=row.subscription_id,
        subscription_public_id=row.sub_public_id,
        event_id=row.event_id,
        breaker=breaker_state(row),
    )


def due_messages(
    conn: Connection, now: datetime, quotas: Mapping[int, int]
) -> dict[int, list[DueDelivery]]:
    """For each account, up to its quota of due messages, oldest due first (not leased)."""
    parts = [
        {"account": account_id, "quota": quota} for account_id, quota in quotas.items() if quota > 0
    ]
    found: dict[int, list[tuple[datetime, DueDelivery]]] = {part["account"]: [] for part in parts}
    for row in read_heads(conn, _due_heads, parts, {"now": now}):
        delivery = _due_delivery(row)
        found[delivery.account_id].append((row.next_attempt_at, delivery))
    return {
        account_id: [delivery for _, delivery in sorted(due, key=lambda d: (d[0], d[1].id))]
        for account_id, due in found.items()
    }


_LEASE_CANDIDATES = select(callback_deliveries.c.id).where(
    callback_deliveries.c.id.in_(bindparam("ids", expanding=True)),
    callback_deliveries.c.status == PENDING,
    callback_deliveries.c.next_attempt_at <= bindparam("now"),
)
_LEASES = {
    postgresql: lease_statement(
        callback_deliveries,
        _LEASE_CANDIDATES,
        postgresql,
        next_attempt_at=bindparam("until"),
        claim_id=bindparam("claim_id"),
    )
    for postgresql in (False, True)
}


def lease_deliveries(
    conn: Connection,
    claim_id: str,
    deliveries: Sequence[DueDelivery],
    now: datetime,
    until: datetime,
) -> list[DueDelivery]:
    """Lease ``deliveries`` (read by ``due_messages``) that are still pending and due (another
    worker may have taken some since) until ``until`` (past the attempt's timeout); the ones
    leased, in the given order."""
    if not deliveries:
        return []
    leased = conn.execute(
        _LEASES[conn.dialect.name == "postgresql"],
        {"ids": [d.id for d in deliveries], "now": now, "until": until, "claim_id": claim_id},
    )
    claimed = set(leased.scalars())
    return [delivery for delivery in deliveries if delivery.id in claimed]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    delivery_id: str
    account_id: int
    attempted_at: datetime
    url: str | None
    status_code: int | None
    error: str | None
    latency_ms: int | None
    delivered: bool
    next_attempt_at: datetime | None  # None with delivered=False: give up
    endpoint_healthy: bool | None = None  # for the URL's breaker (``callbacks.breaker.healthy``)
    subscription_id: int | None = None  # an event's message: its subscription's breaker


def record_attempts(conn: Connection, records: Sequence[tuple[str, AttemptRecord]]) -> None:
    """Record attempts, each under the claim it was made with (a stale claim records nothing
    on the message, only the attempt). An attempt on a message deleted while it was in flight
    (its account deleted, the sandbox reset) is dropped: its row would break the foreign key,
    fail the whole round, and the worker would retry that round for ever."""
    if not records:
        return
    existing = _EXISTING_FOR_RECORD[conn.dialect.name == "postgresql"]
    ids = list({r.delivery_id for _claim, r in records})
    kept = set(conn.execute(existing, {"ids": ids}).scalars())
    records = [(claim, r) for claim, r in records if r.delivery_id in kept]
    if not records:
        return
    conn.execute(
        _INSERT_ATTEMPT,
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
        _RECORD_ON_MESSAGE,
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


# record_attempts' statements, built once: building and keying them on every round was about a
# tenth of the round's CPU time.
_EXISTING = select(callback_deliveries.c.id).where(
    callback_deliveries.c.id.in_(bindparam("ids", expanding=True))
)
_EXISTING_FOR_RECORD = {
    False: _EXISTING,
    # Held to the commit, so a concurrent delete cannot remove a message between this read and
    # the attempt's insert (a key-share lock blocks nothing else).
    True: _EXISTING.with_for_update(key_share=True),
}
_INSERT_ATTEMPT = insert(callback_attempts)
_RECORD_ON_MESSAGE = (
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
    )
)


_STATUS_MESSAGE_UNDER_WAY = (
    select(callback_deliveries.c.id)
    .where(
        callback_deliveries.c.account_id == bindparam("account"),
        callback_deliveries.c.status == PENDING,
        callback_deliveries.c.item_id.is_not(None),
        or_(
            callback_deliveries.c.next_attempt_at <= bindparam("now"),
            callback_deliveries.c.claim_id.is_not(None),
        ),
    )
    .order_by(callback_deliveries.c.next_attempt_at)
    .limit(1)
)


def status_messages_under_way(conn: Connection, account_id: int, now: datetime) -> bool:
    """Whether the account has a status message due or being sent (leased), as opposed to none,
    or only retries waiting for a later attempt: a probe of the pending status messages' index
    in due order (due ones come first, then the leases), however many events are pending."""
    found = conn.execute(_STATUS_MESSAGE_UNDER_WAY, {"account": account_id, "now": now}).first()
    return found is not None


def make_deliveries_due(conn: Connection, account_id: int, now: datetime) -> int:
    """Status messages waiting for a callback URL (or a retry) go out now: the account just set
    one, or its breaker closed (an event subscription's messages have their own endpoint)."""
    result = conn.execute(
        update(callback_deliveries)
        .where(
            callback_deliveries.c.account_id == account_id,
            callback_deliveries.c.subscription_id.is_(None),
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
