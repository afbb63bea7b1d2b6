"""GET /m2m/1.0.0/simcards/{iccid}/usage (extension): one SIM's usage by hour, day or month, and
where it stands against its profile's thresholds (``m2m.usage_views``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from m2m.api.deps import CurrentAccountId, ServicesDep
from m2m.api.schemas import error_responses
from m2m.errors import InvalidFields
from m2m.identifiers import ICCID_FORMAT_PATTERN
from m2m.usage import MAX_SPAN, Granularity
from m2m.usage_views import sim_usage, usage_document

router = APIRouter(tags=["Usage"])

DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DESCRIPTION = f"""\
The SIM's usage in each hour, day or month from `from` to `to` (the account's days, both
included; in the account's time zone, `time_zone` in the answer), every period listed with
zeros where nothing was used. Without a range: today by hour, the last 30 days by day, the last
12 months by month. At most {MAX_SPAN[Granularity.HOUR]} days by hour,
{MAX_SPAN[Granularity.DAY]} days by day, {MAX_SPAN[Granularity.MONTH]} months by month.

Units: data in bytes (uplink and downlink apart), SMS in messages (sent and received apart),
voice in seconds. Usage counts in the period it happened in (when its record's span started),
not when the network reported it.

`thresholds` lists each threshold the SIM's profile sets (`DailyTreshold`, `MonthlyTreshold` of
DataService, SMSService and VoiceService, above 0) with the current day's or month's usage
against it, in the threshold's unit: data in MB (1,000,000 bytes), SMS in messages (sent plus
received), voice in minutes. Crossing the account's warning percentage raises a
`usage.threshold_reached` event, reaching the threshold a `usage.limit_exceeded` event.
"""


def _day(name: str, raw: str | None) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidFields([(name, "not a date such as 2026-12-01")]) from None


@router.get(
    "/simcards/{iccid}/usage",
    summary="Read a SIM's usage (extension)",
    description=DESCRIPTION,
    responses=error_responses(401, 403, 404, 422, 429),
)
async def read_sim_usage(
    account_id: CurrentAccountId,
    services: ServicesDep,
    iccid: Annotated[str, Path(pattern=ICCID_FORMAT_PATTERN, description="The SIM's ICCID.")],
    granularity: Annotated[
        Granularity, Query(description="hour (UTC hours), day or month (the account's).")
    ] = Granularity.DAY,
    from_: Annotated[
        str | None,
        Query(alias="from", pattern=DAY_PATTERN, description="The first day (YYYY-MM-DD)."),
    ] = None,
    to: Annotated[
        str | None, Query(pattern=DAY_PATTERN, description="The last day (YYYY-MM-DD).")
    ] = None,
) -> dict[str, Any]:
    first, last = _day("from", from_), _day("to", to)
    usage = await run_in_threadpool(
        sim_usage,
        services.engine,
        account_id,
        iccid,
        granularity,
        first,
        last,
        services.clock.now(),
    )
    return usage_document(usage)
