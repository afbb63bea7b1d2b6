"""The item queue: workers lease the items that are first in line for their SIM, then record
each outcome with its state change, history row and callback message in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, exists, insert, or_, select, update

from m2m.storage.leases import DONE, PENDING, lease
from m2m.storage.tables import (
    callback_deliveries,
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


def claim_items(
    conn: Connection, claim_id: str, now: datetime, lease_until: datetime, limit: int
) -> list[ClaimedItem]:
    """Lease up to ``limit`` items that are ready: open, not leased (or lease expired), and
    first in line for their SIM (no earlier open item on the same SIM)."""
    earlier = request_items.alias("earlier")
    candidates: Select[Any] = (
        select(request_items.c.id)
        .where(
            request_items.c.status != DONE,
            or_(request_items.c.status == PENDING, request_items.c.lease_expires_at < now),
            ~exists().where(
                earlier.c.sim_id == request_items.c.sim_id,
                earlier.c.id < request_items.c.id,
                earlier.c.status != DONE,
            ),
        )
        .order_by(request_items.c.id)
        .limit(limit)
    )
    claimed = lease(
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
        request_items.c.status != DONE,
    )
    conn.execute(
        update(lifecycle_requests)
        .where(lifecycle_requests.c.id.in_(request_ids), ~exists(open_items))
        .values(finished_at=now)
    )
    return len(mine)
