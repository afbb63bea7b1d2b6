"""The usage policy's deactivations (``tables.usage_deactivations``): recorded with the
deactivation request, and taken up by the worker when their period has ended.

A SIM is due when one of its open rows' period has ended, none of its open rows' still runs
(a SIM deactivated for its day and its month is back at the month's end), and it has no
lifecycle item waiting: its state is then the one its requests left (a deactivation executed
after the period ended, because the worker was behind, must not find it still Active and leave
it off for good). Taking a SIM up
closes all its open rows that have ended, in one ``UPDATE … WHERE closed_at IS NULL``: of two
workers that saw the same SIM due, the second's update finds the rows closed (PostgreSQL
re-reads a row a concurrent transaction changed before updating it; SQLite's writers take
turns), gets nothing back, and so makes no request. Exactly once, without a lock held between
the look and the claim.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, Select, exists, func, insert, select, update

from m2m.storage.leases import DONE
from m2m.storage.tables import (
    accounts,
    lifecycle_requests,
    request_items,
    sim_cards,
    usage_deactivations,
)


@dataclass(frozen=True, slots=True)
class NewDeactivation:
    sim_id: int
    account_id: int
    period: str  # daily or monthly
    period_start: date
    period_ends_at: datetime


@dataclass(frozen=True, slots=True)
class DueSim:
    """A SIM whose deactivations have all ended, taken up (its rows closed) by this claim."""

    sim_id: int
    account_id: int
    iccid: str
    state: str
    account_reactivates: bool  # the account's setting now, not when the SIM was deactivated
    row_ids: tuple[int, ...]
    # Whether the SIM's last lifecycle item is one of these rows' deactivations (not a request of
    # the customer's, or the console's, made since).
    policy_changed_it_last: bool = True


def record(
    conn: Connection,
    tracking_number: str,
    deactivations: Sequence[NewDeactivation],
    now: datetime,
) -> None:
    """Record the deactivations that ``tracking_number`` made (or extends), in its transaction."""
    if not deactivations:
        return
    conn.execute(
        insert(usage_deactivations),
        [
            {
                "sim_id": d.sim_id,
                "account_id": d.account_id,
                "period": d.period,
                "period_start": d.period_start,
                "period_ends_at": d.period_ends_at,
                "deactivation_tracking_number": tracking_number,
                "created_at": now,
            }
            for d in deactivations
        ],
    )


def open_deactivations(conn: Connection, sim_ids: Iterable[int]) -> dict[int, str]:
    """Of ``sim_ids``, those with an open deactivation: the TrackingNumber of its latest."""
    wanted = sorted(set(sim_ids))
    if not wanted:
        return {}
    d = usage_deactivations
    rows = conn.execute(
        select(d.c.sim_id, d.c.deactivation_tracking_number)
        .where(d.c.sim_id.in_(wanted), d.c.closed_at.is_(None))
        .order_by(d.c.sim_id, d.c.id)
    )
    return {row.sim_id: row.deactivation_tracking_number for row in rows}


def reactivating_accounts(conn: Connection, account_ids: Iterable[int]) -> set[int]:
    """Of ``account_ids``, those that have the policy's SIMs back at their period's end."""
    wanted = sorted(set(account_ids))
    if not wanted:
        return set()
    query = select(accounts.c.id).where(accounts.c.id.in_(wanted), accounts.c.usage_reactivate)
    return set(conn.execute(query).scalars())


def last_waiting_operations(conn: Connection, sim_ids: Iterable[int]) -> dict[int, str]:
    """Of ``sim_ids``, those with lifecycle items still waiting: the operation of the last one
    (what the SIM's state will be once they have run)."""
    wanted = sorted(set(sim_ids))
    if not wanted:
        return {}
    rows = conn.execute(
        select(request_items.c.sim_id, lifecycle_requests.c.operation)
        .select_from(
            request_items.join(
                lifecycle_requests, lifecycle_requests.c.id == request_items.c.request_id
            )
        )
        .where(request_items.c.sim_id.in_(wanted), request_items.c.status != DONE)
        .order_by(request_items.c.sim_id, request_items.c.id)
    )
    return {row.sim_id: row.operation for row in rows}  # the last of each SIM's wins


_later = usage_deactivations.alias("later")


def _due(now: datetime, limit: int) -> Select[tuple[int]]:
    """The due SIMs' ids (see the module), at most ``limit``."""
    d = usage_deactivations
    still_running = exists().where(
        _later.c.sim_id == d.c.sim_id,
        _later.c.closed_at.is_(None),
        _later.c.period_ends_at > now,
    )
    # The literal, not a bound value: PostgreSQL then sees the open items' partial index apply.
    items_waiting = exists().where(
        request_items.c.sim_id == d.c.sim_id, request_items.c.status != DONE
    )
    # In the order of the open rows' index, the oldest first; not DISTINCT, which had
    # PostgreSQL walk the SIM index through every closed row instead (a SIM's few rows that
    # repeat it are folded by the caller).
    return (
        select(d.c.sim_id)
        .where(
            d.c.closed_at.is_(None),
            d.c.period_ends_at <= now,
            ~still_running,
            ~items_waiting,
        )
        .order_by(d.c.period_ends_at)
        .limit(limit)
    )


def any_due(conn: Connection, now: datetime) -> bool:
    """Whether a SIM is due: a read, so that a step with nothing to do takes no write lock
    (SQLite has one for the database)."""
    return conn.execute(_due(now, 1)).first() is not None


def claim_due(conn: Connection, now: datetime, limit: int) -> list[DueSim]:
    """Take up to ``limit`` due SIMs (see the module), closing their ended rows at ``now``."""
    d = usage_deactivations
    due = set(conn.execute(_due(now, limit)).scalars())
    if not due:
        return []
    closed = conn.execute(
        update(d)
        .where(d.c.sim_id.in_(sorted(due)), d.c.closed_at.is_(None), d.c.period_ends_at <= now)
        .values(closed_at=now)
        .returning(d.c.id, d.c.sim_id, d.c.deactivation_tracking_number)
    ).all()
    rows: dict[int, list[int]] = defaultdict(list)
    policy_requests: dict[int, set[str]] = defaultdict(set)
    for row_id, sim_id, tracking_number in closed:
        rows[sim_id].append(row_id)
        policy_requests[sim_id].add(tracking_number)
    if not rows:
        return []  # another worker took them up first
    last = _last_requests(conn, rows)
    sims = conn.execute(
        select(
            sim_cards.c.id,
            sim_cards.c.account_id,
            sim_cards.c.iccid,
            sim_cards.c.state,
            accounts.c.usage_reactivate,
        )
        .select_from(sim_cards.join(accounts, accounts.c.id == sim_cards.c.account_id))
        .where(sim_cards.c.id.in_(sorted(rows)))
        .order_by(sim_cards.c.id)
    )
    return [
        DueSim(
            sim_id=sim.id,
            account_id=sim.account_id,
            iccid=sim.iccid,
            state=sim.state,
            account_reactivates=bool(sim.usage_reactivate),
            row_ids=tuple(sorted(rows[sim.id])),
            # No item at all: the requests were purged since; nothing says anyone else acted.
            policy_changed_it_last=last.get(sim.id, None) in (None, *policy_requests[sim.id]),
        )
        for sim in sims
    ]


def _last_requests(conn: Connection, sim_ids: Iterable[int]) -> dict[int, str]:
    """The TrackingNumber of each SIM's last lifecycle item (the (sim_id, id) index's end)."""
    latest = (
        select(request_items.c.sim_id, func.max(request_items.c.id).label("item_id"))
        .where(request_items.c.sim_id.in_(sorted(sim_ids)))
        .group_by(request_items.c.sim_id)
        .subquery()
    )
    rows = conn.execute(
        select(latest.c.sim_id, lifecycle_requests.c.tracking_number).select_from(
            latest.join(request_items, request_items.c.id == latest.c.item_id).join(
                lifecycle_requests, lifecycle_requests.c.id == request_items.c.request_id
            )
        )
    )
    return {row.sim_id: row.tracking_number for row in rows}


def set_reactivation(conn: Connection, row_ids: Sequence[int], tracking_number: str) -> None:
    """Name the reactivation request that brought the rows' SIM back."""
    conn.execute(
        update(usage_deactivations)
        .where(usage_deactivations.c.id.in_(sorted(row_ids)))
        .values(reactivation_tracking_number=tracking_number)
    )
