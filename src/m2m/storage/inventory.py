"""The API's SIM inventory: one SIM by an exact identifier, and filtered keyset pages.

A page is ``WHERE <filters> AND <key> > <cursor's key> ORDER BY <key> LIMIT n + 1`` (the extra
row says whether another page exists), never OFFSET: page 10,000 costs what page 1 costs. The
key is ``id`` or, for a delta sync (``updated_since``), ``(updated_at, id)``; both are index
orders, (account_id, id) and (account_id, updated_at, id), and every filter with an index of its
own keeps that order too: (account_id, state, id), (account_id, cost_center, id), and a label's
(account_id, key, value, sim_id) joined on the SIM's id. So the database walks an index in the
page's order and stops after n + 1 rows whichever plan it picks, and a page is consistent
because it is one statement.

Custom fields and the plan live in the profile document (no column, no index: the schema of
issue 13 has none): they filter the rows of the account's walk, so their cost grows with how
many rows a page has to skip. See ``docs/design-notes.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    func,
    literal,
    null,
    or_,
    select,
    tuple_,
)

from m2m.sim_query import Order, Position, SimFilters
from m2m.storage.fleet import starts_with
from m2m.storage.tables import json_text, sim_cards, sim_labels


@dataclass(frozen=True, slots=True)
class InventorySim:
    """A SIM as the list reads it: what its answer shows (the profile and labels as their
    stored JSON text, see ``m2m.profile.listed_sim_json``), and its position in either order."""

    id: int
    iccid: str
    imsi: str
    msisdn: str
    state: str
    cost_center: str | None
    profile_json: str
    updated_at: datetime | None  # read for a page in the order of changes only (its cursor)
    labels_json: str


_COLUMNS = (
    sim_cards.c.id,
    sim_cards.c.iccid,
    sim_cards.c.imsi,
    sim_cards.c.msisdn,
    sim_cards.c.state,
    sim_cards.c.cost_center,
    json_text(sim_cards.c.profile),
    sim_cards.c.updated_at,
    json_text(sim_cards.c.labels),
)
# A page in id order needs no SIM's time: NULL in its place spares parsing a timestamp per row
# (on SQLite, text to datetime: a tenth of a page's CPU).
_COLUMNS_BY_ID = tuple(
    null().label("updated_at") if column is sim_cards.c.updated_at else column
    for column in _COLUMNS
)
LOOKUP_COLUMNS = ("msisdn", "iccid", "imsi")


def find_sim(conn: Connection, account_id: int, column: str, value: str) -> InventorySim | None:
    """The account's SIM whose ``column`` (msisdn, iccid or imsi) is ``value``; None when there
    is none in this account (whether or not another account has it)."""
    assert column in LOOKUP_COLUMNS
    row = conn.execute(
        select(*_COLUMNS).where(sim_cards.c[column] == value, sim_cards.c.account_id == account_id)
    ).one_or_none()
    return InventorySim(*row) if row is not None else None


def _profile_text(*path: str) -> ColumnElement[str]:
    text: ColumnElement[str] = sim_cards.c.profile[path].as_string()
    return text


def _empty_or(column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
    # The answer shows a missing cost center or custom field as "": a filter for "" finds those.
    if value == "":
        return or_(column.is_(None), column == "")
    return column == value


def _filtered(
    account_id: int, filters: SimFilters, columns: tuple[Any, ...] = _COLUMNS
) -> tuple[Select[Any], ColumnElement[int]]:
    """The SIMs matching ``filters`` (no order, no page): ``_COLUMNS`` selected; and the SIM's
    id to page by in id order: the first label's ``sim_id`` when a label filters (equal to the
    SIM's id, and in the order of the label's index, so the database walks that index and stops
    at the page's end, where ordering by ``sim_cards.id`` made SQLite read and sort every SIM
    with the label first: 1.7 s a page at a million SIMs)."""
    query = select(*columns).where(sim_cards.c.account_id == account_id)
    page_id: ColumnElement[int] = sim_cards.c.id
    if filters.states:
        query = query.where(sim_cards.c.state.in_(filters.states))
    if filters.cost_center is not None:
        query = query.where(_empty_or(sim_cards.c.cost_center, filters.cost_center))
    for n, (key, value) in enumerate(filters.labels):
        # A join per label rather than IN (subquery): the database may walk the label's index
        # in sim id order (a rare label) or probe the label's primary key (sim_id, key) for each
        # SIM of its walk (a common one); IN would make SQLite materialise every match first.
        label = sim_labels.alias(f"label_{n}")
        on = [
            label.c.sim_id == sim_cards.c.id,
            label.c.account_id == account_id,
            label.c.key == key,
        ]
        if value is not None:
            on.append(label.c.value == value)
        query = query.join(label, and_(*on))
        if n == 0:
            page_id = label.c.sim_id
    for field, value in filters.custom_fields:
        query = query.where(_empty_or(_profile_text("CustomFields", field), value))
    if filters.plan is not None:
        query = query.where(_empty_or(_profile_text("DataService", "Plan", "Code"), filters.plan))
    for column, exact in (
        ("msisdn", filters.msisdn),
        ("iccid", filters.iccid),
        ("imsi", filters.imsi),
    ):
        if exact is not None:
            query = query.where(sim_cards.c[column] == exact)
    for column, prefix in (
        ("msisdn", filters.msisdn_prefix),
        ("iccid", filters.iccid_prefix),
        ("imsi", filters.imsi_prefix),
    ):
        if prefix is not None:
            query = query.where(starts_with(sim_cards.c[column], prefix))
    if filters.updated_since is not None:
        query = query.where(sim_cards.c.updated_at >= filters.updated_since)
    return query, page_id


def list_sims(
    conn: Connection,
    account_id: int,
    filters: SimFilters,
    after: Position | None,
    limit: int,
) -> tuple[list[InventorySim], bool]:
    """One page of the account's SIMs matching ``filters``, after ``after`` in the filters'
    order, and whether more follow."""
    if filters.order is Order.UPDATED:
        query, page_id = _filtered(account_id, filters)
        if after is not None:
            assert after.updated_at is not None
            query = query.where(
                tuple_(sim_cards.c.updated_at, sim_cards.c.id)
                # Typed like the column, so SQLite compares its stored text form.
                > tuple_(literal(after.updated_at, sim_cards.c.updated_at.type), after.id)
            )
        query = query.order_by(sim_cards.c.updated_at, sim_cards.c.id)
    else:
        query, page_id = _filtered(account_id, filters, _COLUMNS_BY_ID)
        if after is not None:
            query = query.where(page_id > after.id)
        query = query.order_by(page_id)
    # Positional (``_COLUMNS`` is the dataclass's field order): building a mapping per row cost
    # a fifth of a 1,000-row page.
    rows = [InventorySim(*r) for r in conn.execute(query.limit(limit + 1))]
    return rows[:limit], len(rows) > limit


def count_sims(conn: Connection, account_id: int, filters: SimFilters) -> int:
    """How many of the account's SIMs match ``filters`` (asked for with ``count=true`` only:
    it reads every match)."""
    matching = _filtered(account_id, filters)[0].with_only_columns(sim_cards.c.id).subquery()
    return int(conn.execute(select(func.count()).select_from(matching)).scalar_one())
