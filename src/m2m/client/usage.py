"""The SDK's side of usage (m2m extensions): the answers' models, and the queries of the two
reads (``GET /simcards/{iccid}/usage`` and ``GET /usage``). Units as the server counts them:
bytes, messages, seconds; a threshold's ``used`` in its own ``unit`` (MB, messages, minutes)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

GRANULARITIES = ("hour", "day", "month")
SORTS = ("data", "sms", "voice", "key")


class UsageCounters(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    data_up_bytes: int = 0
    data_down_bytes: int = 0
    sms_out: int = 0
    sms_in: int = 0
    voice_seconds: int = 0

    @property
    def data_bytes(self) -> int:
        return self.data_up_bytes + self.data_down_bytes


class UsagePeriod(UsageCounters):
    start: str = Field(description="2026-12-01 (a day or a month), or an hour's ISO 8601 time")


class ThresholdStanding(BaseModel):
    model_config = ConfigDict(extra="ignore")

    service: str  # data, sms, voice
    period: str  # daily, monthly
    period_start: date
    threshold: int
    unit: str  # MB, messages, minutes
    used: float
    percent_used: float


class SimUsage(BaseModel):
    """One SIM's usage by period, and where it stands against its thresholds now."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    iccid: str = Field(alias="ICCID")
    msisdn: str = Field(alias="MSISDN")
    granularity: str
    time_zone: str
    from_: date = Field(alias="from")
    to: date
    usage: list[UsagePeriod]
    thresholds: list[ThresholdStanding] = []


class UsageGroup(UsageCounters):
    """One row of the account's usage: a SIM (``iccid``, ``msisdn``), a cost center, a label's
    value, or a day or month (``start``), with how many SIMs used something (``sims``)."""

    iccid: str | None = Field(default=None, alias="ICCID")
    msisdn: str | None = Field(default=None, alias="MSISDN")
    cost_center: str | None = None
    label: dict[str, str] | None = None
    start: str | None = None
    sims: int | None = None


def sim_usage_params(
    granularity: str, start: date | str | None, end: date | str | None
) -> dict[str, str]:
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}")
    params = {"granularity": granularity}
    params.update(_range(start, end))
    return params


def usage_params(
    group_by: str, start: date | str | None, end: date | str | None, sort: str | None, limit: int
) -> dict[str, str]:
    if sort is not None and sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    params: dict[str, Any] = {"group_by": group_by, "limit": str(limit), **_range(start, end)}
    if sort is not None:
        params["sort"] = sort
    return params


def _range(start: date | str | None, end: date | str | None) -> dict[str, str]:
    found = {}
    if start is not None:
        found["from"] = start.isoformat() if isinstance(start, date) else start
    if end is not None:
        found["to"] = end.isoformat() if isinstance(end, date) else end
    return found
