"""The overview: SIMs by state, the last day's requests by outcome, callback delivery, and the
account's usage (its last 30 days of data, this month's totals and largest data users)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from m2m import usage_overview
from m2m.console import charts
from m2m.console.web import SignedIn, render
from m2m.identifiers import SimState
from m2m.storage import activity, fleet
from m2m.usage import SECONDS_PER_MINUTE

router = APIRouter()


@router.get("/")
async def overview(request: Request, visitor: SignedIn) -> Response:
    now = visitor.services.clock.now()
    since = now - timedelta(hours=24)
    by_state = await visitor.read(fleet.sims_by_state, visitor.account_id)
    outcomes = await visitor.read(activity.outcomes_since, visitor.account_id, since)
    deliveries = await visitor.read(activity.deliveries_since, visitor.account_id, since)
    usage = await visitor.read(usage_overview.usage_overview, visitor.account_id, now)
    state_bars = charts.horizontal_bars([(s.value, by_state.get(s.value, 0)) for s in SimState])
    latency_bars = charts.horizontal_bars(charts.latency_histogram(deliveries.latencies_ms))
    return render(
        request,
        "overview.html",
        visitor,
        chart=charts,
        sim_total=sum(by_state.values()),
        state_bars=state_bars,
        columns=charts.hourly_columns([(o.hour, o.outcome, o.devices) for o in outcomes], now),
        outcome_totals={
            name: sum(o.devices for o in outcomes if o.outcome == name) for name in charts.OUTCOMES
        },
        deliveries=deliveries,
        rate=charts.success_rate(deliveries.delivered, deliveries.failed),
        p50=charts.percentile(deliveries.latencies_ms, 0.5),
        p95=charts.percentile(deliveries.latencies_ms, 0.95),
        latency_bars=latency_bars,
        usage=usage,
        usage_chart=charts.data_per_day(usage.days),
        usage_30_days=sum(used for _, used in usage.days),
        seconds_per_minute=SECONDS_PER_MINUTE,
    )
