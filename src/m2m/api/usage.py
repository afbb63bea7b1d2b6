"""Usage over the M2M API (extensions; ``m2m.usage_views``): ``GET /simcards/{iccid}/usage``, one
SIM's usage by hour, day or month and where it stands against its profile's thresholds; and
``GET /usage``, the account's usage grouped by SIM, cost center, label, day or month."""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from m2m.api.deps import CurrentAccountId, ServicesDep
from m2m.api.error_handlers import query_problem
from m2m.api.schemas import WholeNumber, error_responses
from m2m.identifiers import ICCID_FORMAT_PATTERN
from m2m.paging import next_link
from m2m.usage import MAX_SPAN, Granularity
from m2m.usage_views import (
    DEFAULT_LIMIT,
    MAX_DAYS,
    MAX_LIMIT,
    MAX_MONTHS,
    account_usage,
    sim_usage,
    usage_document,
)

router = APIRouter(tags=["Usage"])

# Days are checked by ``_day`` (a 422 naming the parameter): the schema says what they are.
DATE: dict[str, Any] = {"format": "date"}

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
        raise query_problem(name, "not a date such as 2026-12-01", raw) from None


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
        Query(alias="from", json_schema_extra=DATE, description="The first day (YYYY-MM-DD)."),
    ] = None,
    to: Annotated[
        str | None, Query(json_schema_extra=DATE, description="The last day (YYYY-MM-DD).")
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


ACCOUNT_DESCRIPTION = f"""\
The account's usage over its days `from` to `to` (both included; default: this month so far, in
the account's time zone), summed per group:

- `group_by=sim` (default): per SIM (ICCID, MSISDN); with `sort=data` and `limit=20`, this
  month's top 20 data consumers are one call;
- `group_by=cost_center`: per cost center ("" for SIMs without one), with how many SIMs used
  something;
- `group_by=label:<key>`: per value of one label (SIMs without that label are left out);
- `group_by=day` or `month`: the account's total per day or month (months: whole months).

`sort`: `data`, `sms` or `voice` (the largest usage first; ties by key), or `key`; the default
is `data`, or `key` (time order) by day and month. Units as in the SIM's usage: bytes, messages,
seconds. Pages of `limit` (at most {MAX_LIMIT}); the next page is in the `Link: <…>;
rel="next"` header. At most {MAX_DAYS} days, or {MAX_MONTHS} whole months (a range from a
month's first day to a month's last day, or to today, is read from the monthly totals).
"""


@router.get(
    "/usage",
    summary="Read the account's usage, grouped (extension)",
    description=ACCOUNT_DESCRIPTION,
    responses={
        200: {
            "description": "A page of groups",
            "headers": {
                "Link": {
                    "description": 'The next page: <url>; rel="next" (absent on the last page)',
                    "schema": {"type": "string"},
                }
            },
        },
        **error_responses(401, 403, 422, 429),
    },
)
async def read_account_usage(
    request: Request,
    account_id: CurrentAccountId,
    services: ServicesDep,
    group_by: Annotated[
        str,
        Query(
            max_length=80,
            description="sim, cost_center, label:<key>, day or month.",
        ),
    ] = "sim",
    from_: Annotated[
        str | None,
        Query(alias="from", json_schema_extra=DATE, description="The first day (YYYY-MM-DD)."),
    ] = None,
    to: Annotated[
        str | None, Query(json_schema_extra=DATE, description="The last day (YYYY-MM-DD).")
    ] = None,
    sort: Annotated[
        Literal["data", "sms", "voice", "key"] | None,
        Query(description="data, sms, voice (largest first) or key."),
    ] = None,
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_LIMIT, description=f"Groups per page (at most {MAX_LIMIT})."),
        WholeNumber,
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=512, description="From the previous page's Link.")
    ] = None,
) -> JSONResponse:
    first, last = _day("from", from_), _day("to", to)
    usage = await run_in_threadpool(
        partial(
            account_usage,
            services.engine,
            account_id,
            group_by=group_by,
            first=first,
            last=last,
            sort=sort,
            limit=limit,
            cursor=cursor,
            now=services.clock.now(),
        )
    )
    body = {
        "time_zone": usage.time_zone,
        "from": usage.first.isoformat(),
        "to": usage.last.isoformat(),
        "group_by": usage.group_by,
        "sort": usage.sort,
        "usage": usage.rows,
    }
    headers = {}
    if usage.next_cursor:
        headers["Link"] = next_link(str(request.url), usage.next_cursor)
    return JSONResponse(body, headers=headers)
