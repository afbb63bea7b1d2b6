"""Reading usage for an authorized caller (the API and the console alike): one SIM's usage by
hour, day or month over a range of the account's days, every period present (zeros where
nothing was used, so a chart needs no gap-filling), and where it stands against each threshold
its profile sets in the current day and month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from m2m.errors import InvalidFields, NotFound
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


def _one(conn: Any, sim_id: int, granularity: Granularity, start: date) -> Totals:
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
