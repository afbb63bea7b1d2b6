"""The item queue: workers lease the items that are first in line for their SIM, shared fairly
across accounts and their requests, then record each outcome with its state change, history row
and callback message in one transaction."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Insert,
    Row,
    Select,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)

from m2m.events import EventType, completed_data, version_of
from m2m.fairness import interleave, nested_shares, nested_top_up, rotated
from m2m.storage import events as event_store
from m2m.storage.leases import (
    CLAIMED,
    DONE,
    HEADS_PER_STATEMENT,
    PENDING,
    Heads,
    distinct_values,
    heads_statement,
    lease_statement,
    read_heads,
)
from m2m.storage.tables import (
    callback_deliveries,
    events,
    lifecycle_requests,
    request_items,
    sim_cards,
    sim_history,
)


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
    http_request_id: str | None  # the X-Request-ID of the call that made the request


# Per account, how many of its oldest open requests a claim shares the account's part across:
# enough for every request a customer usually has running, few enough that a runaway loop of
# one-device requests does not make each claim read thousands of them (it is served in order).
REQUESTS_PER_ACCOUNT = 32
# Pending items a request's read examines beyond its quota: items behind an earlier open item on
# the same SIM (another request's) are skipped, and this bounds what skipping them costs. A
# request whose first pending items are all waiting gets nothing this round and moves up as the
# earlier requests finish (the account's oldest open item never waits on a pending one).
LOOKAHEAD = 256
# Picks a claim makes at most when other workers lease what it picked first (PostgreSQL).
CLAIM_ROUNDS = 3

_EXPIRED = (
    select(request_items.c.id)
    .where(request_items.c.status == CLAIMED, request_items.c.lease_expires_at < bindparam("now"))
    .order_by(request_items.c.lease_expires_at)
    .limit(bindparam("limit"))
)
_OPEN_ACCOUNTS = distinct_values(
    lifecycle_requests.c.account_id, lifecycle_requests.c.finished_at.is_(None)
)
_LEASE_CANDIDATES = select(request_items.c.id).where(
    request_items.c.id.in_(bindparam("ids", expanding=True)),
    or_(
        request_items.c.status == PENDING,
        and_(
            request_items.c.status == CLAIMED,
            request_items.c.lease_expires_at < bindparam("now"),
        ),
    ),
)
_LEASES = {
    postgresql: lease_statement(
        request_items,
        _LEASE_CANDIDATES,
        postgresql,
        status="claimed",
        lease_owner=bindparam("claim_id"),
        lease_expires_at=bindparam("until"),
        attempts=request_items.c.attempts + 1,
    )
    for postgresql in (False, True)
}
_CLAIMED_ITEMS = (
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
        lifecycle_requests.c.http_request_id,
    )
    .select_from(
        request_items.join(lifecycle_requests).outerjoin(
            sim_cards, sim_cards.c.id == request_items.c.sim_id
        )
    )
    .where(request_items.c.id.in_(bindparam("claimed", expanding=True)))
)


def claim_items(
    conn: Connection,
    claim_id: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
    *,
    first_after: int | None = None,
) -> list[ClaimedItem]:
    """Lease up to ``limit`` items that are ready: pending (or leased by a worker whose lease
    expired), and first in line for their SIM (no earlier open item on the same SIM).

    Fair: the batch is shared equally across the accounts with open requests, in an order that
    starts after account ``first_after`` (the caller rotates it), and each account's part across
    its oldest open requests; what one cannot use goes to the others. Returned in that
    interleaved order (items whose lease expired first): the first is the first account's.
    """
    expired = list(conn.execute(_EXPIRED, {"now": now, "limit": limit}).scalars())
    lease = _LEASES[conn.dialect.name == "postgresql"]
    values = {"now": now, "claim_id": claim_id, "until": lease_until}
    order: list[int] = []
    claimed: set[int] = set()
    if expired:
        order += expired
        claimed.update(conn.execute(lease, {"ids": expired, **values}).scalars())
    # Workers claiming at once pick the same heads, and on PostgreSQL the lease skips the rows
    # another worker holds: the worker that lost them reads on past them (per request) rather
    # than going idle with an empty claim until the next wake-up (with a single pick, 5 of 25
    # claims by two workers on one large request came back empty: docs/benchmarks.md).
    past: dict[int, int] = {}
    for _ in range(CLAIM_ROUNDS):
        picked = _fair_pick(conn, limit - len(claimed), first_after, past)
        if not picked:
            break
        ids = [item_id for _, item_id in picked]
        order += ids
        leased = set(conn.execute(lease, {"ids": ids, **values}).scalars())
        claimed |= leased
        lost = [(request_id, item_id) for request_id, item_id in picked if item_id not in leased]
        if not lost:
            break
        for request_id, item_id in lost:
            past[request_id] = max(past.get(request_id, 0), item_id)
    if not claimed:
        return []
    rows = conn.execute(_CLAIMED_ITEMS, {"claimed": list(claimed)})
    by_id = {row.id: ClaimedItem(**row._mapping) for row in rows}
    return [by_id[item_id] for item_id in order if item_id in by_id]


def _fair_pick(
    conn: Connection, limit: int, first_after: int | None, past: dict[int, int]
) -> list[tuple[int, int]]:
    """Up to ``limit`` ready pending items as (request, item), shared fairly (see
    ``claim_items``), each request's read from after item ``past[request]`` (0: its start);
    not leased."""
    if limit <= 0:
        return []
    # More accounts than places: those after the first ``limit`` in this rotation get none.
    accounts = rotated(open_accounts(conn), first_after)[:limit]
    if not accounts:
        return []
    requests = _oldest_open_requests(conn, accounts)
    queues = [requests[account_id] for account_id in accounts]
    quotas = nested_shares(limit, [[None] * len(queue) for queue in queues])
    heads = _ready_heads(
        conn,
        [
            (request_id, quota, past.get(request_id, 0))
            for queue, part in zip(queues, quotas, strict=True)
            for request_id, quota in zip(queue, part, strict=True)
        ],
    )
    got = [[len(heads[request_id]) for request_id in queue] for queue in queues]
    more = [
        [count >= quota > 0 for count, quota in zip(counts, part, strict=True)]
        for counts, part in zip(got, quotas, strict=True)
    ]
    topped = nested_top_up(limit, got, more)
    if topped is not None:
        # Only the requests that filled their quota get more: read on after what they gave.
        again = [
            (request_id, quota - count, heads[request_id][-1])
            for queue, counts, part in zip(queues, got, topped, strict=True)
            for request_id, count, quota in zip(queue, counts, part, strict=True)
            if quota > count
        ]
        for request_id, ids in _ready_heads(conn, again).items():
            heads[request_id] += ids
    return interleave(
        [
            interleave([[(request_id, item) for item in heads[request_id]] for request_id in queue])
            for queue in queues
        ]
    )[:limit]


def open_accounts(conn: Connection) -> list[int]:
    """The accounts with open requests, ascending (a loose index scan)."""
    return sorted(int(account_id) for account_id in conn.execute(_OPEN_ACCOUNTS).scalars())


def _open_requests_head(param: Callable[[str], Any]) -> Select[Any]:
    return (
        select(lifecycle_requests.c.account_id, lifecycle_requests.c.id)
        .where(
            lifecycle_requests.c.account_id == param("account"),
            lifecycle_requests.c.finished_at.is_(None),
        )
        .order_by(lifecycle_requests.c.id)
        .limit(REQUESTS_PER_ACCOUNT)
    )


@functools.lru_cache(maxsize=HEADS_PER_STATEMENT)
def _open_requests_heads(count: int) -> Heads:
    return heads_statement(_open_requests_head, count)


def _oldest_open_requests(conn: Connection, accounts: list[int]) -> dict[int, list[int]]:
    """Each account's oldest open requests (at most REQUESTS_PER_ACCOUNT), ascending."""
    found: dict[int, list[int]] = {account_id: [] for account_id in accounts}
    parts = [{"account": account_id} for account_id in accounts]
    for account_id, request_id in read_heads(conn, _open_requests_heads, parts, {}):
        found[account_id].append(request_id)
    for ids in found.values():
        ids.sort()
    return found


_EARLIER = request_items.alias("earlier")


def _ready_head(param: Callable[[str], Any]) -> Select[Any]:
    """A request's first pending items after ``after`` that are first in line for their SIM,
    up to ``quota``, among its next ``quota + LOOKAHEAD`` pending items."""
    pending_head = (
        select(request_items.c.id, request_items.c.sim_id, request_items.c.request_id)
        .where(
            request_items.c.request_id == param("request"),
            request_items.c.status == PENDING,
            request_items.c.id > param("after"),
        )
        .order_by(request_items.c.id)
        .limit(param("window"))
        .subquery("pending_head")
    )
    # "No earlier open item on the same SIM" as a LIMIT 1 lookup, not NOT EXISTS: PostgreSQL
    # turns NOT EXISTS into a hash anti-join, hashing every open item of every request (3.5 ms
    # at 10,000 open items, growing with them) where one index probe per candidate is enough;
    # a sub-select with LIMIT stays a per-row probe on both databases.
    earlier_open = (
        select(literal_column("1"))
        .where(
            _EARLIER.c.sim_id == pending_head.c.sim_id,
            _EARLIER.c.id < pending_head.c.id,
            _EARLIER.c.status != DONE,
        )
        .limit(1)
        .scalar_subquery()
    )
    # No ORDER BY here: both databases read the head in its order and stop at the quota, where
    # sorting would first judge every item of the lookahead (the caller sorts the ids).
    return (
        select(pending_head.c.request_id, pending_head.c.id)
        .where(earlier_open.is_(None))
        .limit(param("quota"))
    )


@functools.lru_cache(maxsize=HEADS_PER_STATEMENT)
def _ready_heads_statement(count: int) -> Heads:
    return heads_statement(_ready_head, count)


def _ready_heads(conn: Connection, wanted: Sequence[tuple[int, int, int]]) -> dict[int, list[int]]:
    """For each (request, quota, after): the ids of up to ``quota`` of its ready pending items
    after item ``after`` (see ``_ready_head``), ascending."""
    parts = [
        {"request": request_id, "quota": quota, "after": after, "window": quota + LOOKAHEAD}
        for request_id, quota, after in wanted
        if quota > 0
    ]
    found: dict[int, list[int]] = {request_id: [] for request_id, _, _ in wanted}
    for request_id, item_id in read_heads(conn, _ready_heads_statement, parts, {}):
        found[request_id].append(item_id)
    for ids in found.values():
        ids.sort()
    return found


def _state_change_events(postgresql: bool) -> Insert:
    """``sim.state_changed`` for the given items (``item_ids``, expanding), as recorded by
    ``finish_items`` in the same transaction: one row each, read from the item, its request and
    its SIM (the labels as they are now, inside the transaction)."""
    json_object = func.json_build_object if postgresql else func.json_object
    # SQLite keeps JSON as text: json() makes the labels an object inside the new document.
    labels = sim_cards.c.labels if postgresql else func.json(sim_cards.c.labels)
    source = (
        select(
            lifecycle_requests.c.account_id,
            literal(EventType.SIM_STATE_CHANGED.value),
            literal(version_of(EventType.SIM_STATE_CHANGED)),
            bindparam("now", type_=events.c.occurred_at.type),
            request_items.c.sim_id,
            json_object("ICCID", sim_cards.c.iccid, "MSISDN", sim_cards.c.msisdn, "labels", labels),
            json_object(
                "from",
                request_items.c.from_state,
                "to",
                request_items.c.to_state,
                "cause",
                lifecycle_requests.c.cause,
                "TrackingNumber",
                lifecycle_requests.c.tracking_number,
                "operation",
                lifecycle_requests.c.operation,
            ),
        )
        .select_from(
            request_items.join(lifecycle_requests).join(
                sim_cards, sim_cards.c.id == request_items.c.sim_id
            )
        )
        .where(request_items.c.id.in_(bindparam("item_ids", expanding=True)))
        .order_by(request_items.c.id)
    )
    columns = ["account_id", "type", "version", "occurred_at", "sim_id", "sim", "data"]
    return insert(events).from_select(columns, source)


_STATE_CHANGE_EVENTS = {
    postgresql: _state_change_events(postgresql) for postgresql in (False, True)
}


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
    """Record outcomes of items this claim still holds, with their state changes, history rows,
    callback messages and events (``sim.state_changed`` per change, ``request.completed`` per
    request finished), in the caller's transaction. Returns how many were recorded."""
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
            .values(state=to_state, updated_at=now, version=sim_cards.c.version + 1)
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
    # Every account that may get an event in this transaction (state changes, completions),
    # locked at once and in order (see the function), as late as can be: the lock orders the
    # account's writers until they commit, so only what follows it is done one worker at a time.
    # (After the request rows: every writer takes request rows before event locks.)
    event_store.serialize_writes(conn, {o.account_id for o in mine})
    if changes:
        # One INSERT ... SELECT for the whole batch, the envelope's SIM and data built by the
        # database from the rows just written: no statement, and no JSON encoding, per event.
        conn.execute(
            _STATE_CHANGE_EVENTS[conn.dialect.name == "postgresql"],
            {"item_ids": [o.item_id for o in changes], "now": now},
        )
    open_items = select(request_items.c.id).where(
        request_items.c.request_id == lifecycle_requests.c.id,
        request_items.c.status != DONE,
    )
    finished = conn.execute(
        update(lifecycle_requests)
        .where(lifecycle_requests.c.id.in_(request_ids), ~exists(open_items))
        .values(finished_at=now)
        .returning(
            lifecycle_requests.c.id,
            lifecycle_requests.c.account_id,
            lifecycle_requests.c.tracking_number,
            lifecycle_requests.c.operation,
            lifecycle_requests.c.item_count,
        )
    ).all()
    if finished:
        _record_completions(conn, finished, now)
    return len(mine)


def _record_completions(conn: Connection, finished: Sequence[Row[Any]], now: datetime) -> None:
    """One ``request.completed`` per request that just finished, with its results counted (one
    grouped read of its items; a request finishes once, so this is rare next to the items)."""
    results: dict[int, dict[str, int]] = {r.id: {} for r in finished}
    counts = conn.execute(
        select(request_items.c.request_id, request_items.c.result_status, func.count())
        .where(request_items.c.request_id.in_(list(results)))
        .group_by(request_items.c.request_id, request_items.c.result_status)
    )
    for request_id, result_status, count in counts:
        results[request_id][result_status] = count
    event_store.record(
        conn,
        [
            event_store.NewEvent(
                account_id=r.account_id,
                type=EventType.REQUEST_COMPLETED.value,
                version=version_of(EventType.REQUEST_COMPLETED),
                occurred_at=now,
                data=completed_data(r.tracking_number, r.operation, r.item_count, results[r.id]),
            )
            for r in finished
        ],
    )
