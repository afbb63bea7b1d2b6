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

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    func,
    null,
    or_,
    select,
    tuple_,
)

from m2m.sim_query import Order, Position, SimFilters
from m2m.storage.fleet import digits_after
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


def _empty_or(column: ColumnElement[Any], name: str, empty: bool) -> ColumnElement[bool]:
    # The answer shows a missing cost center or custom field as "": a filter for "" finds those.
    if empty:
        return or_(column.is_(None), column == "")
    return column == bindparam(name)


_IDENTIFIERS = ("msisdn", "iccid", "imsi")


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a page's statement looks like for some filters, whatever their values: the key of
    the statements built once (``_statement``). Building one (a join per label, a condition
    per filter) cost a third of a page's CPU when it was done for every page."""

    by_updated: bool
    after: bool
    count: bool
    states: bool
    cost_center: bool | None  # None: no filter; True: the empty value; False: another
    labels: tuple[bool, ...]  # per label: with a value (False: any value)
    custom_fields: tuple[tuple[str, bool], ...]  # (field, the empty value)
    plan: bool | None
    exact: tuple[str, ...]  # identifier columns with an exact value
    prefixes: tuple[tuple[str, bool], ...]  # (column, bounded above)

    @classmethod
    def of(cls, filters: SimFilters, after: Position | None, count: bool) -> _Shape:
        return cls(
            by_updated=filters.order is Order.UPDATED,
            after=after is not None,
            count=count,
            states=bool(filters.states),
            cost_center=None if filters.cost_center is None else filters.cost_center == "",
            labels=tuple(value is not None for _, value in filters.labels),
            custom_fields=tuple((field, value == "") for field, value in filters.custom_fields),
            plan=None if filters.plan is None else filters.plan == "",
            exact=tuple(c for c in _IDENTIFIERS if getattr(filters, c) is not None),
            prefixes=tuple(
                (c, digits_after(prefix) is not None)
                for c in _IDENTIFIERS
                if (prefix := getattr(filters, f"{c}_prefix")) is not None
            ),
        )


def _parameters(account_id: int, filters: SimFilters, after: Position | None) -> dict[str, Any]:
    """The values of the statement of ``_Shape.of(filters, after, …)`` (a page's ``limit``
    aside)."""
    values: dict[str, Any] = {"account": account_id}
    if filters.states:
        values["states"] = list(filters.states)
    if filters.cost_center:
        values["cost_center"] = filters.cost_center
    for n, (key, value) in enumerate(filters.labels):
        values[f"label_key_{n}"] = key
        if value is not None:
            values[f"label_value_{n}"] = value
    for n, (_, value) in enumerate(filters.custom_fields):
        if value:
            values[f"custom_field_{n}"] = value
    if filters.plan:
        values["plan"] = filters.plan
    for column in _IDENTIFIERS:
        if (exact := getattr(filters, column)) is not None:
            values[column] = exact
        if (prefix := getattr(filters, f"{column}_prefix")) is not None:
            values[f"{column}_from"] = prefix
            values[f"{column}_below"] = digits_after(prefix)
    if filters.updated_since is not None:
        values["updated_since"] = filters.updated_since
    if after is not None:
        values["after_id"] = after.id
        values["after_updated_at"] = after.updated_at
    return values


def _filtered(shape: _Shape, columns: tuple[Any, ...]) -> tuple[Select[Any], ColumnElement[int]]:
    """The SIMs matching the filters (no order, no page): ``columns`` selected; and the SIM's
    id to page by in id order: the first label's ``sim_id`` when a label filters (equal to the
    SIM's id, and in the order of the label's index, so the database walks that index and stops
    at the page's end, where ordering by ``sim_cards.id`` made SQLite read and sort every SIM
    with the label first: 1.7 s a page at a million SIMs)."""
    account: BindParameter[int] = bindparam("account")
    query = select(*columns).where(sim_cards.c.account_id == account)
    page_id: ColumnElement[int] = sim_cards.c.id
    if shape.states:
        query = query.where(sim_cards.c.state.in_(bindparam("states", expanding=True)))
    if shape.cost_center is not None:
        query = query.where(_empty_or(sim_cards.c.cost_center, "cost_center", shape.cost_center))
    for n, with_value in enumerate(shape.labels):
        # A join per label rather than IN (subquery): the database may walk the label's index
        # in sim id order (a rare label) or probe the label's primary key (sim_id, key) for each
        # SIM of its walk (a common one); IN would make SQLite materialise every match first.
        label = sim_labels.alias(f"label_{n}")
        on = [
            label.c.sim_id == sim_cards.c.id,
            label.c.account_id == account,
            label.c.key == bindparam(f"label_key_{n}"),
        ]
        if with_value:
            on.append(label.c.value == bindparam(f"label_value_{n}"))
        query = query.join(label, and_(*on))
        if n == 0:
            page_id = label.c.sim_id
    for n, (field, empty) in enumerate(shape.custom_fields):
        custom = _profile_text("CustomFields", field)
        query = query.where(_empty_or(custom, f"custom_field_{n}", empty))
    if shape.plan is not None:
        plan = _profile_text("DataService", "Plan", "Code")
        query = query.where(_empty_or(plan, "plan", shape.plan))
    for name in shape.exact:
        query = query.where(sim_cards.c[name] == bindparam(name))
    # A range, not LIKE: both databases answer it from the column's unique index, whatever
    # their LIKE settings or collations (``fleet.digits_after``: no upper bound for 9s).
    for name, bounded in shape.prefixes:
        query = query.where(sim_cards.c[name] >= bindparam(f"{name}_from"))
        if bounded:
            query = query.where(sim_cards.c[name] < bindparam(f"{name}_below"))
    if shape.by_updated:
        query = query.where(sim_cards.c.updated_at >= bindparam("updated_since"))
    return query, page_id


@functools.lru_cache(maxsize=512)
def _statement(shape: _Shape) -> Select[Any]:
    """The page (or, for ``count``, the number of matches) of the filters of ``shape``."""
    if shape.count:
        matching = _filtered(shape, (sim_cards.c.id,))[0].subquery()
        return select(func.count()).select_from(matching)
    if shape.by_updated:
        query, _ = _filtered(shape, _COLUMNS)
        if shape.after:
            query = query.where(
                tuple_(sim_cards.c.updated_at, sim_cards.c.id)
                # Typed like the column, so SQLite compares its stored text form.
                > tuple_(
                    bindparam("after_updated_at", type_=sim_cards.c.updated_at.type),
                    bindparam("after_id"),
                )
            )
        query = query.order_by(sim_cards.c.updated_at, sim_cards.c.id)
    else:
        query, page_id = _filtered(shape, _COLUMNS_BY_ID)
        if shape.after:
            query = query.where(page_id > bindparam("after_id"))
        query = query.order_by(page_id)
    return query.limit(bindparam("limit", type_=Integer))


def list_sims(
    conn: Connection,
    account_id: int,
    filters: SimFilters,
    after: Position | None,
    limit: int,
) -> tuple[list[InventorySim], bool]:
    """One page of the account's SIMs matching ``filters``, after ``after`` in the filters'
    order, and whether more follow."""
    statement = _statement(_Shape.of(filters, after, count=False))
    values = {**_parameters(account_id, filters, after), "limit": limit + 1}
    # Positional (``_COLUMNS`` is the dataclass's field order): building a mapping per row cost
    # a fifth of a 1,000-row page.
    rows = [InventorySim(*r) for r in conn.execute(statement, values)]
    return rows[:limit], len(rows) > limit


def count_sims(conn: Connection, account_id: int, filters: SimFilters) -> int:
    """How many of the account's SIMs match ``filters`` (asked for with ``count=true`` only:
    it reads every match)."""
    statement = _statement(_Shape.of(filters, None, count=True))
    values = _parameters(account_id, filters, None)
    return int(conn.execute(statement, values).scalar_one())
