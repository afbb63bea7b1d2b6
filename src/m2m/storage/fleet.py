"""The console's view of an account's SIMs: keyset pages, search, one SIM (its profile, labels
and version) and its history.

Pages are keyset-paginated by ``id`` (``id > after`` or ``id < before``, LIMIT n+1 to know
whether another page exists) over the indexes (account_id, id) and (account_id, state, id):
page 10,000 costs what page 1 costs, and nothing counts the whole inventory. A search is a
prefix of an MSISDN, ICCID or IMSI, answered from their unique indexes (see ``_matching``);
``scripts/bench_console.py`` measures all of it on a million SIMs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, union_all

from m2m.storage.tables import sim_cards, sim_history, sim_labels


@dataclass(frozen=True, slots=True)
class SimRow:
    id: int
    iccid: str
    imsi: str
    msisdn: str
    state: str
    cost_center: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SimPage:
    sims: list[SimRow]
    has_before: bool  # a page exists before this one
    has_after: bool  # … and after it


@dataclass(frozen=True, slots=True)
class SimDetail:
    row: SimRow
    profile: dict[str, Any]
    labels: dict[str, str]
    version: int  # bumped by every change: an edit form sent from an older version is stale


@dataclass(frozen=True, slots=True)
class HistoryRow:
    from_state: str
    to_state: str
    operation: str
    tracking_number: str
    changed_at: datetime


_ROW_COLUMNS = (
    sim_cards.c.id,
    sim_cards.c.iccid,
    sim_cards.c.imsi,
    sim_cards.c.msisdn,
    sim_cards.c.state,
    sim_cards.c.cost_center,
    sim_cards.c.updated_at,
)


def digits_after(prefix: str) -> str | None:
    """The smallest digit string greater than every string starting with ``prefix`` (digits):
    '3247' -> '3248', '3249' -> '325', '99' -> None (no upper bound)."""
    stripped = prefix.rstrip("9")
    if not stripped:
        return None
    return stripped[:-1] + str(int(stripped[-1]) + 1)


def starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    # A range, not LIKE: both databases answer it from the column's unique index, whatever
    # their LIKE settings or collations.
    upper = digits_after(prefix)
    if upper is None:
        return column >= prefix  # type: ignore[no-any-return]
    return and_(column >= prefix, column < upper)


IDENTIFIER_COLUMNS = ("msisdn", "iccid", "imsi")
# Below this many matches a search collects the matching ids from the identifier indexes and
# sorts them; above it, matches are dense enough that walking the id index and filtering finds
# a page quickly. Either plan alone is slow on a million SIMs for the other kind of search.
SPARSE_SEARCH = 50_000


def _matching(conn: Connection, digits: str) -> ColumnElement[bool]:
    ranges = [starts_with(sim_cards.c[c], digits) for c in IDENTIFIER_COLUMNS]
    found = 0
    for condition in ranges:  # each an index range scan of at most SPARSE_SEARCH entries
        capped = select(sim_cards.c.id).where(condition).limit(SPARSE_SEARCH).subquery()
        found += int(conn.execute(select(func.count()).select_from(capped)).scalar_one())
    if found >= SPARSE_SEARCH:
        return or_(*ranges)
    ids = union_all(*(select(sim_cards.c.id).where(condition) for condition in ranges))
    return sim_cards.c.id.in_(ids.scalar_subquery())


def list_sims(
    conn: Connection,
    account_id: int,
    *,
    state: str | None = None,
    digits: str | None = None,
    label: tuple[str, str | None] | None = None,
    after_id: int | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> SimPage:
    """One page of the account's SIMs in id order; ``digits`` matches the start of an MSISDN,
    ICCID or IMSI; ``label`` is (key, value), or (key, None) for any value."""
    where: list[ColumnElement[bool]] = [sim_cards.c.account_id == account_id]
    if state:
        where.append(sim_cards.c.state == state)
    if digits:
        where.append(_matching(conn, digits))
    source: Any = sim_cards
    if label is not None:
        # Joined, as the API's filter is (storage/inventory.py): the database walks whichever
        # of the label's index and the SIM's id index finds a page soonest.
        key, value = label
        on = [
            sim_labels.c.sim_id == sim_cards.c.id,
            sim_labels.c.account_id == account_id,
            sim_labels.c.key == key,
        ]
        if value is not None:
            on.append(sim_labels.c.value == value)
        source = sim_cards.join(sim_labels, and_(*on))
    backwards = before_id is not None and after_id is None
    if backwards:
        where.append(sim_cards.c.id < before_id)
        order = sim_cards.c.id.desc()
    else:
        if after_id is not None:
            where.append(sim_cards.c.id > after_id)
        order = sim_cards.c.id.asc()
    rows = [
        SimRow(**r._mapping)
        for r in conn.execute(
            select(*_ROW_COLUMNS).select_from(source).where(*where).order_by(order).limit(limit + 1)
        )
    ]
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
        return SimPage(rows, has_before=more, has_after=True)
    return SimPage(rows, has_before=after_id is not None, has_after=more)


def get_sim(conn: Connection, account_id: int, sim_id: int) -> SimDetail | None:
    row = conn.execute(
        select(*_ROW_COLUMNS, sim_cards.c.profile, sim_cards.c.labels, sim_cards.c.version).where(
            sim_cards.c.id == sim_id, sim_cards.c.account_id == account_id
        )
    ).one_or_none()
    if row is None:
        return None
    values = dict(row._mapping)
    profile = values.pop("profile")
    labels = values.pop("labels") or {}
    version = int(values.pop("version"))
    return SimDetail(SimRow(**values), profile, labels, version)


def sim_history_of(conn: Connection, sim_id: int, limit: int = 200) -> list[HistoryRow]:
    """The SIM's state changes, newest first (the caller has checked the SIM's account)."""
    rows = conn.execute(
        select(
            sim_history.c.from_state,
            sim_history.c.to_state,
            sim_history.c.operation,
            sim_history.c.tracking_number,
            sim_history.c.changed_at,
        )
        .where(sim_history.c.sim_id == sim_id)
        .order_by(sim_history.c.id.desc())
        .limit(limit)
    )
    return [HistoryRow(**r._mapping) for r in rows]


def iccids_of(conn: Connection, account_id: int, sim_ids: Sequence[int]) -> dict[int, str]:
    """sim id -> ICCID, for those of ``sim_ids`` that are the account's."""
    rows = conn.execute(
        select(sim_cards.c.id, sim_cards.c.iccid).where(
            sim_cards.c.account_id == account_id, sim_cards.c.id.in_(list(sim_ids))
        )
    )
    return {r[0]: r[1] for r in rows}


def sims_by_state(conn: Connection, account_id: int) -> dict[str, int]:
    rows = conn.execute(
        select(sim_cards.c.state, func.count())
        .where(sim_cards.c.account_id == account_id)
        .group_by(sim_cards.c.state)
    )
    return {r[0]: int(r[1]) for r in rows}
