"""Lifecycle requests, their items, SIM history and the callback outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)

from m2m.storage.tables import (
    callback_attempts,
    callback_configs,
    callback_deliveries,
    lifecycle_requests,
    request_items,
    sim_cards,
    sim_history,
)

_LOOKUP_CHUNK = 500
# Literals, not bound parameters: SQLite uses a partial index only when the query's condition
# matches the index's WHERE clause textually.
_DONE: ColumnElement[str] = literal_column("'done'", String)
_PENDING: ColumnElement[str] = literal_column("'pending'", String)


def _lease(conn: Connection, table: Table, candidates: Select[Any], **values: Any) -> list[Any]:
    """Set ``values`` on the candidate rows nobody else holds; return their ids.

    PostgreSQL: the candidates are locked with SKIP LOCKED, so concurrent workers take disjoint
    rows. SQLite: write transactions are serialised (BEGIN IMMEDIATE), which gives the same.
    """
    if conn.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    id_column = table.c.id
    return list(
        conn.execute(
            update(table)
            .where(id_column.in_(candidates.scalar_subquery()))
            .values(**values)
            .returning(id_column)
        ).scalars()
    )


# --- waking workers elsewhere -----------------------------------------------------------------

WORK_CHANNEL = "m2m_work"  # PostgreSQL notification channel (m2m.wakeup listens)
ITEMS = "items"
DELIVERIES = "deliveries"


def announce(conn: Connection, what: str) -> None:
    """Tell listening workers that ``what`` (ITEMS or DELIVERIES) is ready, when the caller's
    transaction commits; PostgreSQL only (SQLite has no channel: its workers poll)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_notify(WORK_CHANNEL, what)))


# --- accepting a request --------------------------------------------------------------------


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
) -> int:
    """Insert the request and its items (keys: identifier, identifier_type, sim_id)."""
    request_id = conn.execute(
        insert(lifecycle_requests).values(
            tracking_number=tracking_number,
            account_id=account_id,
            operation=operation,
            callback_token=callback_token,
            item_count=len(items),
            accepted_at=now,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    conn.execute(insert(request_items), [{**item, "request_id": request_id} for item in items])
    announce(conn, ITEMS)
    return int(request_id)


# --- the worker's side: items ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    id: int
    request_id: int
    tracking_number: str
    account_id: int
    operation: str
    identifier: str
    identifier_type: str
    sim_id: int | None
    iccid: str | None
    imsi: str | None
    msisdn: str | None
    state: str | None


def claim_items(
    conn: Connection, claim_id: str, now: datetime, lease_until: datetime, limit: int
) -> list[ClaimedItem]:
    """Lease up to ``limit`` items that are ready: open, not leased (or lease expired), and
    first in line for their SIM (no earlier open item on the same SIM)."""
    earlier = request_items.alias("earlier")
    candidates: Select[Any] = (
        select(request_items.c.id)
        .where(
            request_items.c.status != _DONE,
            or_(request_items.c.status == _PENDING, request_items.c.lease_expires_at < now),
            ~exists().where(
                earlier.c.sim_id == request_items.c.sim_id,
                earlier.c.id < request_items.c.id,
                earlier.c.status != _DONE,
            ),
        )
        .order_by(request_items.c.id)
        .limit(limit)
    )
    claimed = _lease(
        conn,
        request_items,
        candidates,
        status="claimed",
        lease_owner=claim_id,
        lease_expires_at=lease_until,
        attempts=request_items.c.attempts + 1,
    )
    if not claimed:
        return []
    rows = conn.execute(
        select(
            request_items.c.id,
            request_items.c.request_id,
            lifecycle_requests.c.tracking_number,
            lifecycle_requests.c.account_id,
            lifecycle_requests.c.operation,
            request_items.c.identifier,
            request_items.c.identifier_type,
            request_items.c.sim_id,
            sim_cards.c.iccid,
            sim_cards.c.imsi,
            sim_cards.c.msisdn,
            sim_cards.c.state,
        )
        .select_from(
            request_items.join(lifecycle_requests).outerjoin(
                sim_cards, sim_cards.c.id == request_items.c.sim_id
            )
        )
        .where(request_items.c.id.in_(claimed))
        .order_by(request_items.c.id)
    )
    return [ClaimedItem(**row._mapping) for row in rows]


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    item_id: int
    request_id: int
    account_id: int
    tracking_number: str
    operation: str
    sim_id: int | None
    from_state: str | None
    new_state: str | None  # None: the SIM's state does not change
    result_status: str
    messages: list[str]
    delivery_id: str
    payload: dict[str, Any]


def finish_items(
    conn: Connection, claim_id: str, outcomes: Sequence[ItemOutcome], now: datetime
) -> int:
    """Record outcomes of items this claim still holds, with their state changes, history rows
    and callback messages, in the caller's transaction. Returns how many were recorded."""
    if not outcomes:
        return 0
    ids = [o.item_id for o in outcomes]
    owned_query = select(request_items.c.id).where(
        request_items.c.id.in_(ids),
        request_items.c.lease_owner == claim_id,
        request_items.c.status == "claimed",
    )
    if conn.dialect.name == "postgresql":
        owned_query = owned_query.with_for_update()
    owned = set(conn.execute(owned_query).scalars())
    mine = [o for o in outcomes if o.item_id in owned]
    if not mine:
        return 0
    # A bulk request's outcomes are mostly alike (all Success, one state change): each group of
    # alike outcomes is one UPDATE ... WHERE id IN (...), which costs far less than a parameter
    # set per row; outcomes alike to no other (say, per-SIM error messages) are one executemany.
    alike: dict[tuple[str, tuple[str, ...], str | None, str | None], list[ItemOutcome]] = {}
    for o in mine:
        key = (o.result_status, tuple(o.messages), o.from_state, o.new_state or o.from_state)
        alike.setdefault(key, []).append(o)
    done = {"status": "done", "finished_at": now, "lease_owner": None, "lease_expires_at": None}
    singles = []
    for (result, messages, from_state, to_state), group in alike.items():
        if len(group) == 1:
            singles.extend(group)
            continue
        conn.execute(
            update(request_items)
            .where(request_items.c.id.in_([o.item_id for o in group]))
            .values(
                result_status=result,
                messages=list(messages),
                from_state=from_state,
                to_state=to_state,
                **done,
            )
        )
    if singles:
        conn.execute(
            update(request_items)
            .where(request_items.c.id == bindparam("b_id"))
            .values(
                result_status=bindparam("b_result"),
                messages=bindparam("b_messages", type_=request_items.c.messages.type),
                from_state=bindparam("b_from"),
                to_state=bindparam("b_to"),
                **done,
            ),
            [
                {
                    "b_id": o.item_id,
                    "b_result": o.result_status,
                    "b_messages": o.messages,
                    "b_from": o.from_state,
                    "b_to": o.new_state or o.from_state,
                }
                for o in singles
            ],
        )
    changes = [o for o in mine if o.new_state is not None and o.sim_id is not None]
    moves: dict[tuple[str | None, str], list[int]] = {}
    for o in mine:
        if o.new_state is not None and o.sim_id is not None:
            moves.setdefault((o.from_state, o.new_state), []).append(o.sim_id)
    for (from_state, to_state), sim_ids in moves.items():  # a few groups: there are four states
        conn.execute(
            update(sim_cards)
            .where(sim_cards.c.id.in_(sim_ids), sim_cards.c.state == from_state)
            .values(state=to_state, updated_at=now)
        )
    if changes:
        conn.execute(
            insert(sim_history),
            [
                {
                    "sim_id": o.sim_id,
                    "from_state": o.from_state,
                    "to_state": o.new_state,
                    "operation": o.operation,
                    "tracking_number": o.tracking_number,
                    "changed_at": now,
                }
                for o in changes
            ],
        )
    conn.execute(
        insert(callback_deliveries),
        [
            {
                "id": o.delivery_id,
                "account_id": o.account_id,
                "item_id": o.item_id,
                "payload": o.payload,
                "next_attempt_at": now,
                "created_at": now,
            }
            for o in mine
        ],
    )
    request_ids = sorted({o.request_id for o in mine})
    if conn.dialect.name == "postgresql":
        # Two workers finishing a request's last items at once would each still see the other's
        # item open and neither would mark the request finished; locking the request rows makes
        # the second wait for the first and then see its commit.
        conn.execute(
            select(lifecycle_requests.c.id)
            .where(lifecycle_requests.c.id.in_(request_ids))
            .order_by(lifecycle_requests.c.id)
            .with_for_update()
        )
    open_items = select(request_items.c.id).where(
        request_items.c.request_id == lifecycle_requests.c.id,
        request_items.c.status != _DONE,
    )
    conn.execute(
        update(lifecycle_requests)
        .where(lifecycle_requests.c.id.in_(request_ids), ~exists(open_items))
        .values(finished_at=now)
    )
    return len(mine)


# --- the worker's side: callback deliveries -------------------------------------------------


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
            callback_deliveries.c.status == _PENDING, callback_deliveries.c.next_attempt_at <= now
        )
        .order_by(callback_deliveries.c.next_attempt_at)
        .limit(limit)
    )
    claimed = _lease(
        conn, callback_deliveries, candidates, next_attempt_at=until, claim_id=claim_id
    )
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
            callback_deliveries.c.status == _PENDING,
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


# --- retention ------------------------------------------------------------------------------


def purge_finished_requests(conn: Connection, finished_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` requests finished before ``finished_before`` whose callback
    messages are all settled (delivered or failed), with their items, messages and attempts
    (the foreign keys cascade). The SIMs' state history stays. Returns how many were deleted."""
    unsettled = (
        select(request_items.c.id)
        .join(callback_deliveries, callback_deliveries.c.item_id == request_items.c.id)
        .where(
            request_items.c.request_id == lifecycle_requests.c.id,
            callback_deliveries.c.status == _PENDING,
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


# --- callback configuration -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallbackConfig:
    url: str | None
    headers: dict[str, str]
    signing_key_version: int


def get_callback_config(conn: Connection, account_id: int) -> CallbackConfig | None:
    row = conn.execute(
        select(
            callback_configs.c.url,
            callback_configs.c.headers,
            callback_configs.c.signing_key_version,
        ).where(callback_configs.c.account_id == account_id)
    ).one_or_none()
    return CallbackConfig(**row._mapping) if row else None


def set_callback_config(
    conn: Connection, account_id: int, url: str, headers: dict[str, str], now: datetime
) -> None:
    updated = conn.execute(
        update(callback_configs)
        .where(callback_configs.c.account_id == account_id)
        .values(url=url, headers=headers, updated_at=now)
    )
    if updated.rowcount == 0:
        conn.execute(
            insert(callback_configs).values(
                account_id=account_id, url=url, headers=headers, updated_at=now
            )
        )


# --- request status -------------------------------------------------------------------------


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


def count_open_items(conn: Connection) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(request_items).where(request_items.c.status != _DONE)
        ).scalar_one()
    )


def count_pending_deliveries(conn: Connection) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(callback_deliveries)
            .where(callback_deliveries.c.status == _PENDING)
        ).scalar_one()
    )
