"""Reading usage for an authorized caller (the API and the console alike): one SIM's usage by
hour, day or month over a range of the account's days, every period present (zeros where
nothing was used, so a chart needs no gap-filling), and where it stands against each threshold
its profile sets in the current day and month."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine

from m2m.errors import InvalidFields, NotFound
from m2m.labels import KEY_PATTERN as LABEL_KEY_PATTERN
from m2m.paging import InvalidCursor, decode_cursor, encode_cursor
from m2m.storage import accounts as account_store
from m2m.storage import usage as usage_store
from m2m.usage import (
    COUNTERS,
    UNITS,
    Granularity,
    Period,
    Service,
    Totals,
    day_of,
    month_of,
    months_between,
    period_keys,
    span_problem,
)

# What a read covers when it names no range: today by hour, the last 30 days by day, the last
# 12 months by month.
DEFAULT_SPAN = {Granularity.HOUR: 0, Granularity.DAY: 29}
DEFAULT_MONTHS = 11


@dataclass(frozen=True, slots=True)
class ThresholdStanding:
    service: Service
    period: Period
    period_start: date
    threshold: int
    used: float

    @property
    def percent_used(self) -> float:
        return round(100 * self.used / self.threshold, 1)


@dataclass(frozen=True, slots=True)
class SimUsage:
    sim: usage_store.UsageSim
    granularity: Granularity
    first: date
    last: date
    periods: list[tuple[datetime | date, Totals]]
    standings: list[ThresholdStanding]


def sim_usage(
    engine: Engine,
    account_id: int,
    iccid: str,
    granularity: Granularity,
    first: date | None,
    last: date | None,
    now: datetime,
) -> SimUsage:
    """The account's SIM ``iccid``'s usage (see the module); NotFound for another account's."""
    with engine.connect() as conn:
        sim = usage_store.find_sim(conn, account_id, iccid)
        if sim is None:
            raise NotFound(f"No SIM card with ICCID {iccid} in your account.")
        today = day_of(now, sim.zone)
        last = last or (first if first and first > today else today)
        if first is None:
            if granularity is Granularity.MONTH:
                first = _months_back(last, DEFAULT_MONTHS)
            else:
                first = last - timedelta(days=DEFAULT_SPAN[granularity])
        problem = span_problem(granularity, first, last)
        if problem:
            raise InvalidFields([("from", problem)])
        keys = period_keys(granularity, first, last, sim.zone)
        end = keys[-1] + (timedelta(hours=1) if granularity is Granularity.HOUR else timedelta(1))
        stored = {
            row.start: row.totals
            for row in usage_store.sim_usage(conn, sim.id, granularity.value, keys[0], end)
        }
        current = {
            Period.DAILY: (today, _one(conn, sim.id, Granularity.DAY, today)),
            Period.MONTHLY: (
                month_of(now, sim.zone),
                _one(conn, sim.id, Granularity.MONTH, month_of(now, sim.zone)),
            ),
        }
    standings = [
        ThresholdStanding(
            service,
            period,
            current[period][0],
            threshold,
            current[period][1].in_threshold_units(service),
        )
        for (service, period), threshold in sorted(sim.thresholds.items())
    ]
    periods = [(key, stored.get(key, Totals())) for key in keys]
    return SimUsage(sim, granularity, first, last, periods, standings)


def _one(conn: Connection, sim_id: int, granularity: Granularity, start: date) -> Totals:
    rows = usage_store.sim_usage(conn, sim_id, granularity.value, start, start + timedelta(1))
    return next((row.totals for row in rows), Totals())


def _months_back(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def usage_document(usage: SimUsage) -> dict[str, Any]:
    """The API's answer (``GET /simcards/{iccid}/usage``)."""
    return {
        "ICCID": usage.sim.iccid,
        "MSISDN": usage.sim.msisdn,
        "granularity": usage.granularity.value,
        "time_zone": usage.sim.zone.key,
        "from": usage.first.isoformat(),
        "to": usage.last.isoformat(),
        "usage": [
            {"start": key.isoformat(), **{name: getattr(totals, name) for name in COUNTERS}}
            for key, totals in usage.periods
        ],
        "thresholds": [
            {
                "service": s.service.value,
                "period": s.period.value,
                "period_start": s.period_start.isoformat(),
                "threshold": s.threshold,
                "unit": UNITS[s.service],
                "used": round(s.used, 3),
                "percent_used": s.percent_used,
            }
            for s in usage.standings
        ],
    }


# --- an account's usage, grouped ------------------------------------------------------------------

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_DAYS = 366
MAX_MONTHS = 120
SORTS = ("data", "sms", "voice", "key")


@dataclass(frozen=True, slots=True)
class AccountUsage:
    time_zone: str
    first: date
    last: date
    group_by: str
    sort: str
    rows: list[dict[str, Any]]
    next_cursor: str | None


def account_usage(
    engine: Engine,
    account_id: int,
    *,
    group_by: str,
    first: date | None,
    last: date | None,
    sort: str | None,
    limit: int,
    cursor: str | None,
    now: datetime,
) -> AccountUsage:
    """The account's usage over its days ``first`` to ``last`` (default: this month so far),
    summed per SIM, cost center, value of one label, day or month, sorted by a service's usage
    (the largest first: "top consumers") or by the key; a page and the next page's cursor."""
    group, label_key = _group(group_by)
    sort = sort or ("key" if group in ("day", "month") else "data")
    if sort not in SORTS:
        raise InvalidFields([("sort", f"one of {', '.join(SORTS)}")])
    with engine.connect() as conn:
        account = account_store.get_account(conn, account_id)
        if account is None:  # deleted while the call was in flight
            raise NotFound("No such account.")
        zone = ZoneInfo(account.time_zone)
        today = day_of(now, zone)
        first = first or today.replace(day=1)
        last = last or max(today, first)
        monthly = _monthly(group, first, last, today)
        problem = _range_problem(first, last, monthly)
        if problem:
            raise InvalidFields([("from", problem)])
        start = first.replace(day=1) if monthly else first
        after = _after(cursor, group) if cursor else None
        groups = usage_store.account_usage(
            conn,
            account_id,
            group=group,
            label_key=label_key,
            monthly=monthly,
            start=start,
            end=last,
            sort=sort,
            limit=limit + 1,
            after=after,
        )
        page, more = groups[:limit], len(groups) > limit
        names = (
            usage_store.sim_names(conn, account_id, [g.key for g in page]) if group == "sim" else {}
        )
    rows = [_row(group, label_key, g, names) for g in page]
    next_cursor = None
    if more and page:
        last_group = page[-1]
        next_cursor = encode_cursor({"m": last_group.measure, "k": _wire_key(last_group.key)})
    return AccountUsage(zone.key, first, last, group_by, sort, rows, next_cursor)


def _group(group_by: str) -> tuple[str, str | None]:
    if group_by.startswith("label:"):
        key = group_by.removeprefix("label:")
        if not re.fullmatch(LABEL_KEY_PATTERN, key):
            raise InvalidFields([("group_by", "label:<key>, the key as labels spell them")])
        return "label", key
    if group_by not in ("sim", "cost_center", "day", "month"):
        raise InvalidFields([("group_by", "sim, cost_center, label:<key>, day or month")])
    return group_by, None


def _monthly(group: str, first: date, last: date, today: date) -> bool:
    """Whether the range is read from the monthly aggregates: by month (whole months), or when
    it is whole months anyway (ending with a month's last day, or today)."""
    if group == "month":
        return True
    if group == "day" or first.day != 1:
        return False
    return last == today or (last + timedelta(days=1)).day == 1


def _range_problem(first: date, last: date, monthly: bool) -> str | None:
    if last < first:
        return "to is before from"
    if monthly and months_between(first, last) > MAX_MONTHS:
        return f"at most {MAX_MONTHS} months"
    if not monthly and (last - first).days + 1 > MAX_DAYS:
        return f"at most {MAX_DAYS} days, or whole months (from a month's first day)"
    return None


def _wire_key(key: Any) -> Any:
    return key.isoformat() if isinstance(key, date) else key


def _after(cursor: str, group: str) -> tuple[int | None, Any]:
    try:
        fields = decode_cursor(cursor, "m", "k")
    except InvalidCursor:
        raise InvalidFields([("cursor", "not a cursor of this listing")]) from None
    key = fields["k"]
    try:
        if group in ("day", "month"):
            key = date.fromisoformat(key)
        elif group == "sim" and not isinstance(key, int):
            raise ValueError(key)
    except (TypeError, ValueError):
        raise InvalidFields([("cursor", "not a cursor of this listing")]) from None
    measure = fields["m"]
    if measure is not None and not isinstance(measure, int):
        raise InvalidFields([("cursor", "not a cursor of this listing")])
    return measure, key


def _row(
    group: str,
    label_key: str | None,
    usage: usage_store.GroupUsage,
    names: dict[int, tuple[str, str]],
) -> dict[str, Any]:
    counters = {name: getattr(usage.totals, name) for name in COUNTERS}
    if group == "sim":
        iccid, msisdn = names.get(usage.key, ("", ""))
        return {"ICCID": iccid, "MSISDN": msisdn, **counters}
    if group == "cost_center":
        return {"cost_center": usage.key, "sims": usage.sims, **counters}
    if group == "label":
        return {"label": {"key": label_key, "value": usage.key}, "sims": usage.sims, **counters}
    return {"start": _wire_key(usage.key), "sims": usage.sims, **counters}
