"""Usage storage: what the aggregates are read with (a SIM and what its usage is judged by,
its aggregates over a range), and the batch checks the importer makes before counting. Counting
itself is ``storage.usage_ingest``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Table, and_, bindparam, func, literal, or_, select

from m2m.storage.tables import (
    accounts,
    sim_cards,
    sim_labels,
    usage_account_daily,
    usage_daily,
    usage_hourly,
    usage_monthly,
)
from m2m.usage import (
    COUNTERS,
    THRESHOLD_PATHS,
    Period,
    Service,
    Totals,
    set_thresholds,
)
from m2m.usage_records import UsageRecord

# Identifiers looked up per statement: far below both databases' limits on parameters.
LOOKUP_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class UsageSim:
    id: int
    account_id: int
    iccid: str
    imsi: str
    msisdn: str
    state: str
    thresholds: dict[tuple[Service, Period], int]
    zone: ZoneInfo
    warning_percent: int
    policy: str  # the account's: notify, or deactivate


def sim_key(record: UsageRecord) -> tuple[str, str]:
    """How the record names its SIM: ("iccid", …) or ("imsi", …)."""
    return ("iccid", record.iccid) if record.iccid else ("imsi", record.imsi or "")


def unknown_sims(conn: Connection, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of the SIMs named (as ``sim_key`` names them) do not exist."""
    wanted: dict[str, list[str]] = {"iccid": [], "imsi": []}
    for kind, value in keys:
        wanted[kind].append(value)
    missing = set(keys)
    for kind, values in wanted.items():
        column = sim_cards.c[kind]
        for start in range(0, len(values), LOOKUP_CHUNK):
            chunk = values[start : start + LOOKUP_CHUNK]
            found = conn.execute(select(column).where(column.in_(chunk))).scalars()
            missing -= {(kind, value) for value in found}
    return missing


# The six thresholds read out of the profile by the database: decoding whole profiles cost more
# than the rest of an ingested batch.
THRESHOLD_COLUMNS = tuple(
    sim_cards.c.profile[path].as_integer().label(f"threshold_{n}")
    for n, path in enumerate(THRESHOLD_PATHS.values())
)
# What ``usage_sim`` reads, with ``THRESHOLD_COLUMNS`` last.
USAGE_SIM_COLUMNS = (
    sim_cards.c.id,
    sim_cards.c.account_id,
    sim_cards.c.iccid,
    sim_cards.c.imsi,
    sim_cards.c.msisdn,
    sim_cards.c.state,
    accounts.c.time_zone,
    accounts.c.usage_warning_percent,
    accounts.c.usage_policy,
)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def usage_sim(row: Any) -> UsageSim:
    """A row of the SIM's columns, its account's usage settings and ``THRESHOLD_COLUMNS``."""
    values = dict(zip(THRESHOLD_PATHS, row[-len(THRESHOLD_COLUMNS) :], strict=True))
    return UsageSim(
        id=row.id,
        account_id=row.account_id,
        iccid=row.iccid,
        imsi=row.imsi,
        msisdn=row.msisdn,
        state=row.state,
        thresholds=set_thresholds(values),
        zone=_zone(row.time_zone),
        warning_percent=row.usage_warning_percent,
        policy=row.usage_policy,
    )


# SIMs with what their usage is judged by (``usage_sim`` reads its rows).
_USAGE_SIMS = select(*USAGE_SIM_COLUMNS, *THRESHOLD_COLUMNS).select_from(sim_cards.join(accounts))
_ACCOUNT_SIM = _USAGE_SIMS.where(
    sim_cards.c.account_id == bindparam("account_id"),
    sim_cards.c.iccid == bindparam("iccid"),
)


def find_sim(conn: Connection, account_id: int, iccid: str) -> UsageSim | None:
    """The account's SIM ``iccid`` with what its usage is judged by, or None."""
    row = conn.execute(_ACCOUNT_SIM, {"account_id": account_id, "iccid": iccid}).one_or_none()
    return usage_sim(row) if row is not None else None


# --- reading ------------------------------------------------------------------------------------

_GRANULARITIES = {"hour": (usage_hourly, "hour"), "day": (usage_daily, "day")}
_GRANULARITIES["month"] = (usage_monthly, "month")


@dataclass(frozen=True, slots=True)
class UsageRow:
    start: datetime | date
    totals: Totals


def sim_usage(
    conn: Connection,
    sim_id: int,
    granularity: str,
    start: datetime | date,
    end: datetime | date,
) -> Iterator[UsageRow]:
    """One SIM's aggregates of ``granularity`` (hour, day, month) from ``start`` (included) to
    ``end`` (excluded), in time order: an index range of the aggregate's primary key."""
    table, key = _GRANULARITIES[granularity]
    query = (
        select(table.c[key], *(table.c[n] for n in COUNTERS))
        .where(and_(table.c.sim_id == sim_id, table.c[key] >= start, table.c[key] < end))
        .order_by(table.c[key])
    )
    for row in conn.execute(query):
        yield UsageRow(row[0], Totals(*row[1:]))


# --- an account's usage, grouped ------------------------------------------------------------------

# What a group is keyed by, and what the rows are sorted by (usage measures: descending).
GROUPS = ("sim", "cost_center", "label", "day", "month")
MEASURES = {
    "data": ("data_up_bytes", "data_down_bytes"),
    "sms": ("sms_out", "sms_in"),
    "voice": ("voice_seconds",),
}


@dataclass(frozen=True, slots=True)
class GroupUsage:
    key: Any  # a SIM id, a cost center, a label's value, a day or a month
    sims: int
    totals: Totals
    measure: int | None  # the sorted-by measure (None when sorted by key)


def account_usage(
    conn: Connection,
    account_id: int,
    *,
    group: str,
    label_key: str | None,
    monthly: bool,
    start: date,
    end: date,
    sort: str,
    limit: int,
    after: tuple[int | None, Any] | None,
) -> list[GroupUsage]:
    """The account's usage from ``start`` to ``end`` (both included; months by their first day
    when ``monthly``), summed per group, sorted by a measure (descending, then by key) or by the
    key; keyset-paged after (measure, key) of the previous page's last row."""
    table, period = (usage_monthly, "month") if monthly else (usage_daily, "day")
    one_period = (end.replace(day=1) == start) if monthly else (end == start)
    if group == "sim" and one_period:
        return _sims_of_one_period(conn, account_id, table, period, start, sort, limit, after)
    source: Any = table
    key: ColumnElement[Any]
    if group == "sim":
        key = table.c.sim_id
    elif group == "cost_center":
        source = table.join(sim_cards, sim_cards.c.id == table.c.sim_id)
        key = func.coalesce(sim_cards.c.cost_center, "")
    elif group == "label":
        source = table.join(
            sim_labels, and_(sim_labels.c.sim_id == table.c.sim_id, sim_labels.c.key == label_key)
        )
        key = sim_labels.c.value
    else:
        key = table.c[period]
    sums = [func.sum(table.c[c]).label(c) for c in COUNTERS]
    query = (
        select(
            key.label("key"),
            (literal(1) if group == "sim" else func.count(table.c.sim_id.distinct())).label("sims"),
            *sums,
        )
        .select_from(source)
        .where(
            table.c.account_id == account_id,
            table.c[period] >= start,
            table.c[period] <= end,
        )
        .group_by(key)
    )
    if sort == "key":
        measure = None
        if after is not None:
            query = query.having(key > after[1])
        query = query.order_by(key)
    else:
        parts = [func.sum(table.c[c]) for c in MEASURES[sort]]
        measure = sum(parts[1:], parts[0])
        query = query.add_columns(measure.label("measure"))
        if after is not None:
            last_measure, last_key = after
            query = query.having(
                or_(measure < last_measure, and_(measure == last_measure, key > last_key))
            )
        query = query.order_by(measure.desc(), key)
    rows = conn.execute(query.limit(limit)).all()
    return [
        GroupUsage(
            row.key,
            row.sims,
            Totals(*(int(getattr(row, c) or 0) for c in COUNTERS)),
            int(row.measure) if measure is not None else None,
        )
        for row in rows
    ]


def _sims_of_one_period(
    conn: Connection,
    account_id: int,
    table: Table,
    period: str,
    start: date,
    sort: str,
    limit: int,
    after: tuple[int | None, Any] | None,
) -> list[GroupUsage]:
    """``account_usage`` per SIM over one day or month: each SIM has one row of it, so the rows
    are the groups — no GROUP BY (a top 20 of 1,000,000 SIMs for a month was 1.6 s with it on
    PostgreSQL, docs/benchmarks.md)."""
    key = table.c.sim_id
    query = select(key.label("key"), *(table.c[c] for c in COUNTERS)).where(
        table.c.account_id == account_id, table.c[period] == start
    )
    measure: ColumnElement[Any] | None = None
    if sort == "key":
        if after is not None:
            query = query.where(key > after[1])
        query = query.order_by(key)
    else:
        parts = [table.c[c] for c in MEASURES[sort]]
        measure = sum(parts[1:], parts[0])
        query = query.add_columns(measure.label("measure"))
        if after is not None:
            last_measure, last_key = after
            query = query.where(
                or_(measure < last_measure, and_(measure == last_measure, key > last_key))
            )
        query = query.order_by(measure.desc(), key)
    return [
        GroupUsage(
            row.key,
            1,
            Totals(*(int(getattr(row, c)) for c in COUNTERS)),
            int(row.measure) if measure is not None else None,
        )
        for row in conn.execute(query.limit(limit))
    ]


def sim_names(
    conn: Connection, account_id: int, sim_ids: Sequence[int]
) -> dict[int, tuple[str, str]]:
    """The account's SIMs ``sim_ids`` by (ICCID, MSISDN)."""
    if not sim_ids:
        return {}
    rows = conn.execute(
        select(sim_cards.c.id, sim_cards.c.iccid, sim_cards.c.msisdn).where(
            sim_cards.c.account_id == account_id, sim_cards.c.id.in_(list(sim_ids))
        )
    )
    return {row.id: (row.iccid, row.msisdn) for row in rows}


def account_sims(conn: Connection, account_id: int, sim_ids: Sequence[int]) -> dict[int, UsageSim]:
    """The account's SIMs ``sim_ids`` (another account's are left out) with what their usage is
    judged by, by id."""
    if not sim_ids:
        return {}
    rows = conn.execute(
        _USAGE_SIMS.where(sim_cards.c.account_id == account_id, sim_cards.c.id.in_(list(sim_ids)))
    )
    return {row.id: usage_sim(row) for row in rows}


def account_days(conn: Connection, account_id: int, first: date, last: date) -> dict[date, Totals]:
    """The account's usage per day from ``first`` to ``last`` (both included) that has any: a
    range of its own day rows (``usage_account_daily``), whatever the number of SIMs."""
    table = usage_account_daily
    query = select(table.c.day, *(table.c[c] for c in COUNTERS)).where(
        table.c.account_id == account_id, table.c.day >= first, table.c.day <= last
    )
    return {row[0]: Totals(*row[1:]) for row in conn.execute(query)}


def rebuild_account_days(conn: Connection, account_id: int | None = None) -> int:
    """The account's (or every account's) day totals summed again from its SIMs' days, in the
    caller's transaction; how many day rows there are now. For batches counted without them
    (by the previous release during an upgrade, docs/usage.md); the usage of SIMs deleted
    since is no longer in their days, so it leaves the account's too."""
    days = usage_account_daily
    sums = [func.sum(usage_daily.c[c]) for c in COUNTERS]
    source = select(usage_daily.c.account_id, usage_daily.c.day, *sums).group_by(
        usage_daily.c.account_id, usage_daily.c.day
    )
    clear = days.delete()
    counted = select(func.count()).select_from(days)
    if account_id is not None:
        source = source.where(usage_daily.c.account_id == account_id)
        clear = clear.where(days.c.account_id == account_id)
        counted = counted.where(days.c.account_id == account_id)
    conn.execute(clear)
    conn.execute(days.insert().from_select(["account_id", "day", *COUNTERS], source))
    return int(conn.execute(counted).scalar_one())  # (psycopg has no rowcount for this insert)


def account_has_usage(conn: Connection, account_id: int) -> bool:
    """Whether the account has ever used anything: a day row of its own (its primary key's
    first entry), which keeps the usage of SIMs deleted since, as the overview's days do."""
    days = usage_account_daily
    query = select(days.c.day).where(days.c.account_id == account_id).limit(1)
    return conn.execute(query).first() is not None


def active_sims_with_thresholds(
    conn: Connection, account_id: int
) -> list[tuple[str, int | None, int | None]]:
    """The account's Active SIMs: (ICCID, daily data threshold, daily voice threshold)."""
    data_daily, voice_daily = (
        sim_cards.c.profile[THRESHOLD_PATHS[key]].as_integer()
        for key in ((Service.DATA, Period.DAILY), (Service.VOICE, Period.DAILY))
    )
    rows = conn.execute(
        select(sim_cards.c.iccid, data_daily, voice_daily)
        .where(sim_cards.c.account_id == account_id, sim_cards.c.state == "Active")
        .order_by(sim_cards.c.id)
    )
    return [(row[0], row[1], row[2]) for row in rows]
