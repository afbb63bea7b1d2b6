"""Event subscriptions: an account's subscriptions (saved, listed, changed, deleted), the fan-out
that turns the event log into their messages in the callback outbox, and their endpoints'
circuit breakers.

**The fan-out cursor.** Each subscription keeps ``through_event_id``, the last of its account's
events it has considered. ``fan_out_targets`` lists (and on PostgreSQL locks, skipping rows
another worker holds) the enabled subscriptions with events past their cursor; the caller reads
the next events (``events_after``), keeps those the subscription wants, ``enqueue``\\s one message
each and ``advance``\\s the cursor, all in its one transaction: an event is queued once per
subscription, never lost, never doubled. An account's events commit in id order
(``events.serialize_writes``), so ``id > cursor`` skips nothing; it also finds the next kept event
when the cursor points at purged ones.

Which events a subscription wants is the caller's decision (patterns against the catalog); this
module stores the patterns as given.
"""

from __future__ import annotations

import functools
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    and_,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)

from m2m.storage.callback_configs import (
    BreakerState,
    breaker_state,
    save_breaker_of,
    take_probe_of,
)
from m2m.storage.events import read_wire, serialize_writes
from m2m.storage.leases import PENDING
from m2m.storage.notify import DELIVERIES, announce
from m2m.storage.tables import (
    callback_attempts,
    callback_deliveries,
    event_subscriptions,
    events,
)

MAX_PER_ACCOUNT = 20  # subscriptions an account may have
ENABLED = "enabled"
PAUSED = "paused"
_BREAKER_CLOSED = {
    "breaker_failures": 0,
    "breaker_trips": 0,
    "breaker_open_until": None,
    "breaker_probe_id": None,
}


class TooManySubscriptions(Exception):
    """The account has ``MAX_PER_ACCOUNT`` subscriptions already."""


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int  # internal; the API and the console show ``public_id``
    public_id: str
    account_id: int
    url: str
    headers: dict[str, str]
    event_types: list[str]
    label_filter: dict[str, str]
    status: str  # ENABLED or PAUSED
    signing_key_version: int
    signing_key_rotated_at: datetime | None
    through_event_id: int
    created_at: datetime
    updated_at: datetime
    breaker: BreakerState


_COLUMNS = (
    event_subscriptions.c.id,
    event_subscriptions.c.public_id,
    event_subscriptions.c.account_id,
    event_subscriptions.c.url,
    event_subscriptions.c.headers,
    event_subscriptions.c.event_types,
    event_subscriptions.c.label_filter,
    event_subscriptions.c.status,
    event_subscriptions.c.signing_key_version,
    event_subscriptions.c.signing_key_rotated_at,
    event_subscriptions.c.through_event_id,
    event_subscriptions.c.created_at,
    event_subscriptions.c.updated_at,
    event_subscriptions.c.breaker_failures,
    event_subscriptions.c.breaker_trips,
    event_subscriptions.c.breaker_open_until,
    event_subscriptions.c.breaker_probe_id,
)


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        public_id=row.public_id,
        account_id=row.account_id,
        url=row.url,
        headers=dict(row.headers or {}),
        event_types=list(row.event_types or []),
        label_filter=dict(row.label_filter or {}),
        status=row.status,
        signing_key_version=row.signing_key_version,
        signing_key_rotated_at=row.signing_key_rotated_at,
        through_event_id=int(row.through_event_id),
        created_at=row.created_at,
        updated_at=row.updated_at,
        breaker=breaker_state(row),
    )


def new_public_id() -> str:
    return "sub_" + secrets.token_hex(12)


def latest_event_id(conn: Connection, account_id: int) -> int:
    """The id of the account's latest event (0: none). Takes the account's event write order
    first (``events.serialize_writes``), so no event with a lower id can commit after it."""
    serialize_writes(conn, [account_id])
    found = conn.execute(
        select(func.max(events.c.id)).where(events.c.account_id == account_id)
    ).scalar_one_or_none()
    return int(found or 0)


def count(conn: Connection, account_id: int) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(event_subscriptions)
            .where(event_subscriptions.c.account_id == account_id)
        ).scalar_one()
    )


def create(
    conn: Connection,
    account_id: int,
    *,
    url: str,
    headers: dict[str, str],
    event_types: Sequence[str],
    label_filter: dict[str, str],
    now: datetime,
    status: str = ENABLED,
) -> Subscription:
    """A new subscription, starting at the end of the account's log (it gets the events after
    its creation). ``TooManySubscriptions`` past ``MAX_PER_ACCOUNT``."""
    if count(conn, account_id) >= MAX_PER_ACCOUNT:
        raise TooManySubscriptions(account_id)
    public_id = new_public_id()
    conn.execute(
        insert(event_subscriptions).values(
            public_id=public_id,
            account_id=account_id,
            url=url,
            headers=dict(headers),
            event_types=list(event_types),
            label_filter=dict(label_filter),
            status=status,
            through_event_id=latest_event_id(conn, account_id),
            created_at=now,
            updated_at=now,
        )
    )
    found = get(conn, account_id, public_id)
    assert found is not None
    return found


def list_for_account(conn: Connection, account_id: int) -> list[Subscription]:
    """The account's subscriptions, oldest first."""
    query = (
        select(*_COLUMNS)
        .where(event_subscriptions.c.account_id == account_id)
        .order_by(event_subscriptions.c.id)
    )
    return [_subscription(row) for row in conn.execute(query)]


def get(
    conn: Connection, account_id: int, public_id: str, *, lock: bool = False
) -> Subscription | None:
    """The account's subscription with this public id (None: none such in this account)."""
    query = select(*_COLUMNS).where(
        event_subscriptions.c.account_id == account_id,
        event_subscriptions.c.public_id == public_id,
    )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).one_or_none()
    return _subscription(row) if row else None


_CHANGEABLE = frozenset({"url", "headers", "event_types", "label_filter", "status"})


def update_subscription(
    conn: Connection, account_id: int, public_id: str, changes: dict[str, Any], now: datetime
) -> Subscription | None:
    """Apply ``changes`` (any of url, headers, event_types, label_filter, status); None when
    the account has no such subscription. A new URL closes the breaker (a new endpoint)."""
    unknown = set(changes) - _CHANGEABLE
    if unknown:
        raise ValueError(f"not changeable: {sorted(unknown)}")
    values: dict[str, Any] = {**changes, "updated_at": now}
    before = get(conn, account_id, public_id, lock=True)
    if before is None:
        return None
    if "url" in changes and changes["url"] != before.url:
        values.update(_BREAKER_CLOSED)
    conn.execute(
        update(event_subscriptions).where(event_subscriptions.c.id == before.id).values(**values)
    )
    if "breaker_open_until" in values or changes.get("status") == ENABLED:
        make_due(conn, before.id, now)  # what waited for the old endpoint goes out now
    return get(conn, account_id, public_id)


def delete_subscription(conn: Connection, account_id: int, public_id: str) -> bool:
    """Delete it, with its messages and their attempts (the foreign keys cascade)."""
    result = conn.execute(
        delete(event_subscriptions).where(
            event_subscriptions.c.account_id == account_id,
            event_subscriptions.c.public_id == public_id,
        )
    )
    return result.rowcount == 1


def bump_version(conn: Connection, account_id: int, public_id: str, now: datetime) -> int | None:
    """Move the subscription to its next signing-secret version; that version (None: no such
    subscription)."""
    result = conn.execute(
        update(event_subscriptions)
        .where(
            event_subscriptions.c.account_id == account_id,
            event_subscriptions.c.public_id == public_id,
        )
        .values(
            signing_key_version=event_subscriptions.c.signing_key_version + 1,
            signing_key_rotated_at=now,
            updated_at=now,
        )
        .returning(event_subscriptions.c.signing_key_version)
    )
    version = result.scalar_one_or_none()
    return None if version is None else int(version)


def replay(
    conn: Connection, account_id: int, public_id: str, since: datetime, now: datetime
) -> int | None:
    """Move the cursor back to just before the account's first kept event at or after
    ``since``, so the fan-out considers those events again; never forward. Returns the new
    cursor (None: no such subscription)."""
    subscription = get(conn, account_id, public_id, lock=True)
    if subscription is None:
        return None
    serialize_writes(conn, [account_id])
    first = conn.execute(
        select(func.min(events.c.id)).where(
            events.c.account_id == account_id, events.c.occurred_at >= since
        )
    ).scalar_one_or_none()
    cursor = subscription.through_event_id
    if first is not None:
        cursor = min(cursor, int(first) - 1)
    conn.execute(
        update(event_subscriptions)
        .where(event_subscriptions.c.id == subscription.id)
        .values(through_event_id=cursor, updated_at=now)
    )
    return cursor


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One of a subscription's messages, for showing (the console, the CLI)."""

    id: str
    event_id: int
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime


def recent_deliveries(
    conn: Connection, account_id: int, public_id: str, limit: int = 50
) -> list[DeliveryRow]:
    """The subscription's latest messages, newest first (none for another account's)."""
    query = (
        select(
            callback_deliveries.c.id,
            callback_deliveries.c.event_id,
            callback_deliveries.c.status,
            callback_deliveries.c.attempts,
            callback_deliveries.c.last_error,
            callback_deliveries.c.created_at,
            callback_deliveries.c.delivered_at,
            callback_deliveries.c.next_attempt_at,
        )
        .join(
            event_subscriptions,
            event_subscriptions.c.id == callback_deliveries.c.subscription_id,
        )
        .where(
            event_subscriptions.c.account_id == account_id,
            event_subscriptions.c.public_id == public_id,
        )
        .order_by(callback_deliveries.c.created_at.desc(), callback_deliveries.c.event_id.desc())
        .limit(limit)
    )
    return [DeliveryRow(**row._mapping) for row in conn.execute(query)]


def attempts_of(conn: Connection, account_id: int, delivery_id: str) -> list[dict[str, Any]]:
    """A subscription message's attempts, oldest first (none for another account's)."""
    query = (
        select(
            callback_attempts.c.attempted_at,
            callback_attempts.c.url,
            callback_attempts.c.status_code,
            callback_attempts.c.error,
            callback_attempts.c.latency_ms,
        )
        .join(callback_deliveries, callback_deliveries.c.id == callback_attempts.c.delivery_id)
        .where(
            callback_deliveries.c.id == delivery_id,
            callback_deliveries.c.account_id == account_id,
            callback_deliveries.c.subscription_id.is_not(None),
        )
        .order_by(callback_attempts.c.id)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


# --- the fan-out ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FanOutTarget:
    id: int
    account_id: int
    event_types: list[str]
    label_filter: dict[str, str]
    through_event_id: int


_HAS_EVENTS = exists(
    select(events.c.id).where(
        events.c.account_id == event_subscriptions.c.account_id,
        events.c.id > event_subscriptions.c.through_event_id,
    )
)


@functools.cache
def _fan_out_query(postgresql: bool, limit: int) -> Select[Any]:
    """Built once per kind: every delivery round of every worker runs it."""
    query = (
        select(
            event_subscriptions.c.id,
            event_subscriptions.c.account_id,
            event_subscriptions.c.event_types,
            event_subscriptions.c.label_filter,
            event_subscriptions.c.through_event_id,
        )
        .where(event_subscriptions.c.status == ENABLED, _HAS_EVENTS)
        .order_by(event_subscriptions.c.id)
        .limit(limit)
    )
    if postgresql:
        query = query.with_for_update(of=event_subscriptions, skip_locked=True)
    return query


def fan_out_targets(conn: Connection, limit: int = 100) -> list[FanOutTarget]:
    """Enabled subscriptions with events past their cursor (an index probe each), locked on
    PostgreSQL until the transaction ends; rows another worker holds are skipped."""
    query = _fan_out_query(conn.dialect.name == "postgresql", limit)
    return [
        FanOutTarget(
            row.id,
            row.account_id,
            list(row.event_types or []),
            dict(row.label_filter or {}),
            int(row.through_event_id),
        )
        for row in conn.execute(query)
    ]


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    id: int
    type: str
    labels: dict[str, str] | None  # the SIM's labels then (None: about no SIM)
    envelope: dict[str, Any]  # as ``GET /events`` serves it


def events_after(conn: Connection, account_id: int, after: int, limit: int) -> list[LoggedEvent]:
    """The account's next ``limit`` events after ``after``, in id order (all types)."""
    found = []
    for event_id, wire in read_wire(conn, account_id, after=after, limit=limit):
        envelope = json.loads(wire)
        sim = envelope.get("sim")
        labels = dict(sim.get("labels") or {}) if isinstance(sim, dict) else None
        found.append(LoggedEvent(event_id, envelope["type"], labels, envelope))
    return found


def enqueue(
    conn: Connection,
    subscription_id: int,
    account_id: int,
    matched: Sequence[LoggedEvent],
    now: datetime,
) -> int:
    """One message per event for the subscription, due now (one executemany)."""
    if not matched:
        return 0
    conn.execute(
        insert(callback_deliveries),
        [
            {
                "id": str(uuid.uuid4()),
                "account_id": account_id,
                "subscription_id": subscription_id,
                "event_id": event.id,
                "payload": event.envelope,
                "next_attempt_at": now,
                "created_at": now,
            }
            for event in matched
        ],
    )
    announce(conn, DELIVERIES)
    return len(matched)


def advance(conn: Connection, subscription_id: int, through: int) -> None:
    conn.execute(
        update(event_subscriptions)
        .where(event_subscriptions.c.id == subscription_id)
        .values(through_event_id=through)
    )


# --- the endpoints' breakers -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What sending a subscription's message takes, and its breaker."""

    id: int
    public_id: str
    url: str
    headers: dict[str, str]
    signing_key_version: int
    signing_key_rotated_at: datetime | None
    breaker: BreakerState


def endpoints(
    conn: Connection, subscription_ids: Sequence[int], *, lock: bool = False
) -> dict[int, Endpoint]:
    """The subscriptions' endpoints, by id (deleted ones are left out). With ``lock``, locked
    until the transaction ends (PostgreSQL), in id order so that workers cannot deadlock."""
    if not subscription_ids:
        return {}
    query = (
        select(*_COLUMNS)
        .where(event_subscriptions.c.id.in_(sorted(set(subscription_ids))))
        .order_by(event_subscriptions.c.id)
    )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {
        row.id: Endpoint(
            row.id,
            row.public_id,
            row.url,
            dict(row.headers or {}),
            row.signing_key_version,
            row.signing_key_rotated_at,
            breaker_state(row),
        )
        for row in conn.execute(query)
    }


def save_breaker(conn: Connection, subscription_id: int, state: BreakerState) -> None:
    save_breaker_of(conn, event_subscriptions.c.id, subscription_id, state)


def take_probe(
    conn: Connection, subscription_id: int, delivery_id: str, now: datetime, lease_until: datetime
) -> bool:
    """Make ``delivery_id`` the probe of the subscription's breaker (see ``take_probe_of``)."""
    return take_probe_of(
        conn, event_subscriptions.c.id, subscription_id, delivery_id, now, lease_until
    )


def park(conn: Connection, subscription_id: int, until: datetime, keep: str | None = None) -> int:
    """Hold the subscription's waiting messages (not leased; but ``keep``) until ``until``:
    while its breaker is open they are not due, so claims do not read past them."""
    condition = and_(
        callback_deliveries.c.subscription_id == subscription_id,
        callback_deliveries.c.status == PENDING,
        callback_deliveries.c.claim_id.is_(None),
        callback_deliveries.c.next_attempt_at < until,
    )
    if keep is not None:
        condition = and_(condition, callback_deliveries.c.id != keep)
    parked = update(callback_deliveries).where(condition).values(next_attempt_at=until)
    return int(conn.execute(parked).rowcount)


def make_due(conn: Connection, subscription_id: int, now: datetime) -> int:
    """The subscription's waiting messages go out now (its breaker closed, it was resumed)."""
    result = conn.execute(
        update(callback_deliveries)
        .where(
            callback_deliveries.c.subscription_id == subscription_id,
            callback_deliveries.c.status == PENDING,
            callback_deliveries.c.claim_id.is_(None),
            callback_deliveries.c.next_attempt_at > now,
        )
        .values(next_attempt_at=now)
    )
    if result.rowcount:
        announce(conn, DELIVERIES)
    return int(result.rowcount)
