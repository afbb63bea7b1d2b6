"""An account's usage at a glance (the console's overview): its data per day over its last 30
days, this month's totals, and this month's largest data users against their monthly data
threshold. Days and months are the account's, in its time zone (docs/usage.md, "Periods").

The days and the month's totals are read from the account's own day rows (``usage_account_daily``,
a few dozen rows whatever the fleet's size), the largest users with the API's per-SIM read of
the month; every read is limited to the account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from m2m.errors import NotFound
from m2m.storage import accounts as account_store
from m2m.storage import usage as usage_store
from m2m.usage import Period, Service, Totals, day_of
from m2m.usage_views import ThresholdStanding

DAYS = 30
TOP_CONSUMERS = 10


@dataclass(frozen=True, slots=True)
class Consumer:
    """One of the month's largest data users."""

    sim_id: int
    iccid: str
    msisdn: str
    totals: Totals  # this month's
    monthly_data: ThresholdStanding | None  # None: the profile sets no monthly data threshold


@dataclass(frozen=True, slots=True)
class UsageOverview:
    time_zone: str
    month: date  # this month's first day
    days: list[tuple[date, int]]  # data bytes per day, the last ``DAYS`` of the account's, in order
    month_totals: Totals
    top: list[Consumer]  # the largest data users first; only SIMs that used data
    ever_used: bool  # whether the account has any usage at all, in any month

    @property
    def has_recent_usage(self) -> bool:
        """Whether anything was used in the days or the month shown."""
        return _has_recent_usage(self.days, self.month_totals)


def _has_recent_usage(days: list[tuple[date, int]], month_totals: Totals) -> bool:
    return any(used for _, used in days) or month_totals != Totals()


def usage_overview(conn: Connection, account_id: int, now: datetime) -> UsageOverview:
    """The account's overview (see the module), as of ``now``."""
    account = account_store.get_account(conn, account_id)
    if account is None:  # deleted while the page was asked for
        raise NotFound("No such account.")
    zone = ZoneInfo(account.time_zone)
    today = day_of(now, zone)
    first = today - timedelta(days=DAYS - 1)
    month = today.replace(day=1)
    # The account's own day rows: a few dozen whatever the fleet's size.
    per_day = usage_store.account_days(conn, account_id, min(first, month), today)
    month_totals = sum((t for day, t in per_day.items() if day >= month), Totals())
    # Sorted by data, largest first: the first SIM that used no data ends the list.
    largest = [
        group for group in _largest_data_users(conn, account_id, month, today) if group.measure
    ]
    sims = usage_store.account_sims(conn, account_id, [group.key for group in largest])
    # A SIM deleted since its usage was read is left out (its usage went with it).
    top = [
        _consumer(sims[group.key], group.totals, month) for group in largest if group.key in sims
    ]
    days = [
        (day, per_day[day].data_bytes if day in per_day else 0)
        for day in (first + timedelta(n) for n in range(DAYS))
    ]
    # Only an account without recent usage is asked whether it ever had any.
    ever_used = _has_recent_usage(days, month_totals) or usage_store.account_has_usage(
        conn, account_id
    )
    return UsageOverview(zone.key, month, days, month_totals, top, ever_used)


def _largest_data_users(
    conn: Connection, account_id: int, month: date, today: date
) -> list[usage_store.GroupUsage]:
    """The month's largest data users, from its monthly totals (the API's per-SIM read)."""
    return usage_store.account_usage(
        conn,
        account_id,
        group="sim",
        label_key=None,
        monthly=True,
        start=month,
        end=today,
        sort="data",
        limit=TOP_CONSUMERS,
        after=None,
    )


def _consumer(sim: usage_store.UsageSim, totals: Totals, month: date) -> Consumer:
    threshold = sim.thresholds.get((Service.DATA, Period.MONTHLY))
    standing = None
    if threshold is not None:
        used = totals.in_threshold_units(Service.DATA)
        standing = ThresholdStanding(Service.DATA, Period.MONTHLY, month, threshold, used)
    return Consumer(sim.id, sim.iccid, sim.msisdn, totals, standing)
