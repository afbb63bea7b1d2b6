"""Usage and its thresholds: units, periods and the crossings that raise events (pure).

Units, the same in the profile, the API and the console:

- usage is counted in its natural unit: data in **bytes** (uplink and downlink apart), SMS in
  **messages** (sent and received apart), voice in **seconds**;
- a profile's ``DailyTreshold`` and ``MonthlyTreshold`` are in the unit people set limits in:
  data in **megabytes** (1 MB = 1,000,000 bytes, as operators bill), SMS in **messages** (sent
  plus received), voice in **minutes** (60 seconds); ``0`` means no threshold (the documented
  default).

A usage record is attributed to the period in which its span **started** (mediation systems cut
sessions into records of at most an hour; a record is not split across hours). Hours are UTC;
days and months are the account's, in its time zone (default UTC), so "daily" re-arms at the
customer's midnight.

A threshold is crossed by the record that takes a period's total from below a mark to at or
above it: the warning mark (the account's warning percentage of the threshold, default 80%) and
the threshold itself. Each crossing is reported once per SIM, service, period and level.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

BYTES_PER_MB = 1_000_000
SECONDS_PER_MINUTE = 60
DEFAULT_WARNING_PERCENT = 80


class Service(StrEnum):
    DATA = "data"
    SMS = "sms"
    VOICE = "voice"


class Period(StrEnum):
    DAILY = "daily"
    MONTHLY = "monthly"


class Level(StrEnum):
    WARNING = "warning"  # the account's warning percentage of the threshold
    LIMIT = "limit"  # the threshold itself


UNITS = {Service.DATA: "MB", Service.SMS: "messages", Service.VOICE: "minutes"}
_PROFILE_SERVICES = {
    Service.DATA: "DataService",
    Service.SMS: "SMSService",
    Service.VOICE: "VoiceService",
}
_PROFILE_PERIODS = {Period.DAILY: "DailyTreshold", Period.MONTHLY: "MonthlyTreshold"}
# Where each threshold is in a stored profile: (service section, field).
THRESHOLD_PATHS: dict[tuple[Service, Period], tuple[str, str]] = {
    (service, period): (section, name)
    for service, section in _PROFILE_SERVICES.items()
    for period, name in _PROFILE_PERIODS.items()
}


@dataclass(frozen=True, slots=True)
class Totals:
    """Usage in its natural units."""

    data_up_bytes: int = 0
    data_down_bytes: int = 0
    sms_out: int = 0
    sms_in: int = 0
    voice_seconds: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.data_up_bytes + other.data_up_bytes,
            self.data_down_bytes + other.data_down_bytes,
            self.sms_out + other.sms_out,
            self.sms_in + other.sms_in,
            self.voice_seconds + other.voice_seconds,
        )

    def __sub__(self, other: Totals) -> Totals:
        return Totals(
            self.data_up_bytes - other.data_up_bytes,
            self.data_down_bytes - other.data_down_bytes,
            self.sms_out - other.sms_out,
            self.sms_in - other.sms_in,
            self.voice_seconds - other.voice_seconds,
        )

    @property
    def data_bytes(self) -> int:
        return self.data_up_bytes + self.data_down_bytes

    def in_threshold_units(self, service: Service) -> float:
        """What counts against a ``service`` threshold, in that threshold's unit."""
        if service is Service.DATA:
            return (self.data_up_bytes + self.data_down_bytes) / BYTES_PER_MB
        if service is Service.SMS:
            return float(self.sms_out + self.sms_in)
        return self.voice_seconds / SECONDS_PER_MINUTE


COUNTERS = tuple(Totals.__dataclass_fields__)


def thresholds_of(profile: Mapping[str, Any]) -> dict[tuple[Service, Period], int]:
    """The profile's thresholds that are set (above 0), by service and period."""
    values = {}
    for threshold, (key, name) in THRESHOLD_PATHS.items():
        section = profile.get(key)
        values[threshold] = section.get(name) if isinstance(section, Mapping) else None
    return set_thresholds(values)


def set_thresholds(
    values: Mapping[tuple[Service, Period], object],
) -> dict[tuple[Service, Period], int]:
    """Of the thresholds' values, those that are set: whole numbers above 0."""
    return {
        threshold: value
        for threshold, value in values.items()
        if isinstance(value, int) and not isinstance(value, bool) and value > 0
    }


def crossed(threshold: int, warning_percent: int, before: float, after: float) -> list[Level]:
    """The levels a period's total passed on its way from ``before`` to ``after``: a mark is
    passed when ``before`` is below it and ``after`` at or above it."""
    marks = [(Level.WARNING, threshold * warning_percent / 100), (Level.LIMIT, float(threshold))]
    return [level for level, mark in marks if before < mark <= after]


def hour_of(at: datetime) -> datetime:
    """The UTC hour a moment belongs to (the hourly aggregates' key)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(at: datetime, zone: ZoneInfo) -> date:
    """The account's day a moment belongs to."""
    return at.astimezone(zone).date()


def month_of(at: datetime, zone: ZoneInfo) -> date:
    """The account's month a moment belongs to, as its first day."""
    return at.astimezone(zone).date().replace(day=1)


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


# The longest range one read may ask for, per granularity (an answer of at most ~750 periods).
MAX_SPAN = {Granularity.HOUR: 31, Granularity.DAY: 366, Granularity.MONTH: 120}
SPAN_UNITS = {Granularity.HOUR: "days", Granularity.DAY: "days", Granularity.MONTH: "months"}


def months_between(first: date, last: date) -> int:
    """How many months ``first``'s month to ``last``'s, both counted."""
    return (last.year - first.year) * 12 + last.month - first.month + 1


def span_problem(granularity: Granularity, first: date, last: date) -> str | None:
    """What is wrong with reading ``first`` to ``last`` (the account's days, both included)."""
    if last < first:
        return "to is before from"
    if granularity is Granularity.MONTH:
        span = months_between(first, last)
    else:
        span = (last - first).days + 1
    if span > MAX_SPAN[granularity]:
        limit = MAX_SPAN[granularity]
        return f"at most {limit} {SPAN_UNITS[granularity]} by {granularity.value}"
    return None


def period_keys(
    granularity: Granularity, first: date, last: date, zone: ZoneInfo
) -> list[datetime | date]:
    """Every period from the account's day ``first`` to its day ``last`` (both included), in
    order: UTC hours, the account's days, or its months (as their first day)."""
    if granularity is Granularity.DAY:
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]
    if granularity is Granularity.MONTH:
        months: list[datetime | date] = []
        month = first.replace(day=1)
        while month <= last:
            months.append(month)
            month = (month + timedelta(days=32)).replace(day=1)
        return months
    start = datetime.combine(first, time(), zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC)
    hours: list[datetime | date] = []
    hour = start
    while hour < end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


# --- an account's usage settings ------------------------------------------------------------

USAGE_POLICIES = ("notify", "deactivate")


def usage_settings_problem(
    time_zone: str | None, warning_percent: int | None, policy: str | None
) -> str | None:
    """What is wrong with an account's usage settings (None: each given one is fine), for the
    admin CLI, the console and sandbox scenarios alike."""
    if policy is not None and policy not in USAGE_POLICIES:
        return f"The usage policy is one of {', '.join(USAGE_POLICIES)}."
    if time_zone is not None and time_zone not in _time_zones():
        return f"Unknown time zone {time_zone!r}: give an IANA name such as Europe/Berlin."
    if warning_percent is not None and not 1 <= warning_percent <= 100:
        return "The warning percentage must be from 1 to 100."
    return None


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    # available_timezones() walks the zone database's files on every call.
    return frozenset(zoneinfo.available_timezones())
