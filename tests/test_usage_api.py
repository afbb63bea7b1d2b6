"""GET /m2m/1.0.0/simcards/{iccid}/usage on both databases: every period listed, the current
day and month against the profile's thresholds, the account's own SIMs only, clear 422s."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from m2m.clock import ManualClock
from m2m.storage import usage_ingest
from m2m.storage.engine import write_transaction
from m2m.storage.tables import sim_cards
from m2m.usage import Totals
from m2m.usage_records import UsageRecord
from tests.support.api import M2M, auth
from tests.support.sims import add_active_sims
from tests.support.tenants import Tenant
from tests.support.usage import sandbox_sim


def count(engine: Engine, clock: ManualClock, iccid: str, *records: tuple[int, Totals]) -> None:
    """Usage of ``iccid`` ``hours_ago`` before the clock's time, one batch."""
    batch = [
        UsageRecord(iccid, None, clock.now() - timedelta(hours=hours_ago), None, totals)
        for hours_ago, totals in records
    ]
    with write_transaction(engine) as conn:
        usage_ingest.ingest(conn, f"test-{len(batch)}-{iccid}", batch, clock.now())


def test_a_sims_usage_by_day_lists_every_day_and_stands_against_its_thresholds(
    api: TestClient, engine: Engine, clock: ManualClock
) -> None:
    iccid, profile = sandbox_sim(engine)
    count(
        engine,
        clock,
        iccid,
        (0, Totals(data_up_bytes=2_000_000, sms_out=3)),
        (48, Totals(data_down_bytes=500, voice_seconds=120)),
    )
    today = clock.now().date()
    answer = api.get(f"{M2M}/simcards/{iccid}/usage", headers=auth(api))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["granularity"] == "day"
    assert body["time_zone"] == "UTC"
    assert body["to"] == today.isoformat()
    assert len(body["usage"]) == 30
    by_day = {day["start"]: day for day in body["usage"]}
    assert by_day[today.isoformat()]["data_up_bytes"] == 2_000_000
    two_days_ago = (clock.now() - timedelta(hours=48)).date().isoformat()
    assert by_day[two_days_ago]["voice_seconds"] == 120
    assert sum(day["sms_out"] for day in body["usage"]) == 3
    data = profile["DataService"]
    assert isinstance(data, dict)
    daily_data = next(
        t for t in body["thresholds"] if (t["service"], t["period"]) == ("data", "daily")
    )
    assert daily_data == {
        "service": "data",
        "period": "daily",
        "period_start": today.isoformat(),
        "threshold": data["DailyTreshold"],
        "unit": "MB",
        "used": 2.0,
        "percent_used": round(200 / data["DailyTreshold"], 1),
    }


def test_by_hour_and_by_month(api: TestClient, engine: Engine, clock: ManualClock) -> None:
    iccid, _ = sandbox_sim(engine)
    count(engine, clock, iccid, (0, Totals(sms_in=1)))
    headers = auth(api)
    today = clock.now().date().isoformat()
    hours = api.get(
        f"{M2M}/simcards/{iccid}/usage",
        params={"granularity": "hour", "from": today, "to": today},
        headers=headers,
    ).json()["usage"]
    assert len(hours) == 24
    assert [h["sms_in"] for h in hours].count(1) == 1
    months = api.get(
        f"{M2M}/simcards/{iccid}/usage", params={"granularity": "month"}, headers=headers
    ).json()["usage"]
    assert len(months) == 12
    assert months[-1]["start"] == clock.now().date().replace(day=1).isoformat()
    assert months[-1]["sms_in"] == 1


def test_another_accounts_sim_is_not_found(
    api: TestClient, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id, first=500)
    with engine.connect() as conn:
        theirs = conn.execute(
            select(sim_cards.c.iccid).where(sim_cards.c.account_id == tenant.account_id)
        ).scalar_one()
    answer = api.get(f"{M2M}/simcards/{theirs}/usage", headers=auth(api))
    assert answer.status_code == 404
    assert theirs in answer.json()["error_description"]


def test_bad_ranges_are_422s_that_say_what_is_wrong(api: TestClient, engine: Engine) -> None:
    iccid, _ = sandbox_sim(engine)
    headers = auth(api)
    url = f"{M2M}/simcards/{iccid}/usage"
    for params, expected in [
        ({"from": "2026-12-10", "to": "2026-12-01"}, "to is before from"),
        ({"from": "2026-01-01", "to": "2026-12-01", "granularity": "hour"}, "at most 31 days"),
        ({"from": "2026-02-30"}, "not a date"),
        ({"granularity": "week"}, "granularity"),
        ({"from": "yesterday"}, "from"),
    ]:
        answer = api.get(url, params=params, headers=headers)
        assert answer.status_code == 422, (params, answer.text)
        assert expected in answer.text, (params, answer.text)


def sandbox_iccids(engine: Engine, count: int) -> list[str]:
    return [sandbox_sim(engine, n)[0] for n in range(count)]


def test_top_consumers_this_month_are_one_call_and_pages_follow_the_link(
    api: TestClient, engine: Engine, clock: ManualClock
) -> None:
    iccids = sandbox_iccids(engine, 5)
    for n, iccid in enumerate(iccids):
        count(engine, clock, iccid, (0, Totals(data_down_bytes=(n + 1) * 1000, sms_out=5 - n)))
    headers = auth(api)
    first = api.get(f"{M2M}/usage", params={"limit": 2}, headers=headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["group_by"] == "sim"
    assert body["sort"] == "data"
    assert [row["ICCID"] for row in body["usage"]] == [iccids[4], iccids[3]]
    assert body["usage"][0]["data_down_bytes"] == 5000
    seen = [row["ICCID"] for row in body["usage"]]
    link = first.headers["link"]
    while link:
        url = link.split(";")[0].strip("<>")
        page = api.get(url, headers=headers)
        seen += [row["ICCID"] for row in page.json()["usage"]]
        link = page.headers.get("link", "")
    assert seen == list(reversed(iccids))
    by_sms = api.get(f"{M2M}/usage", params={"sort": "sms", "limit": 1}, headers=headers)
    assert by_sms.json()["usage"][0]["ICCID"] == iccids[0]


def test_top_consumers_over_several_months_add_each_sims_months_up(
    api: TestClient, engine: Engine, clock: ManualClock
) -> None:
    light, heavy = sandbox_iccids(engine, 2)
    count(engine, clock, light, (0, Totals(data_up_bytes=300)), (40 * 24, Totals(data_up_bytes=1)))
    count(
        engine, clock, heavy, (0, Totals(data_up_bytes=200)), (40 * 24, Totals(data_up_bytes=200))
    )
    since = (clock.now() - timedelta(days=40)).date().isoformat()
    headers = auth(api)
    this_month = api.get(f"{M2M}/usage", headers=headers).json()["usage"]
    assert [(row["ICCID"], row["data_up_bytes"]) for row in this_month] == [
        (light, 300),
        (heavy, 200),
    ]
    both = api.get(f"{M2M}/usage", params={"from": since}, headers=headers)
    assert both.status_code == 200, both.text
    rows = both.json()["usage"]
    assert [(row["ICCID"], row["data_up_bytes"]) for row in rows] == [
        (heavy, 400),
        (light, 301),
    ]


def test_usage_by_cost_center_label_and_day(
    api: TestClient, engine: Engine, clock: ManualClock
) -> None:
    first, second, third = sandbox_iccids(engine, 3)
    with write_transaction(engine) as conn:
        conn.execute(
            sim_cards.update()
            .where(sim_cards.c.iccid.in_([first, second]))
            .values(cost_center="Trucks")
        )
    for iccid in (first, second, third):
        count(engine, clock, iccid, (0, Totals(sms_in=2)))
    headers = auth(api)
    by_cost_center = api.get(
        f"{M2M}/usage", params={"group_by": "cost_center", "sort": "sms"}, headers=headers
    ).json()["usage"]
    trucks = next(row for row in by_cost_center if row["cost_center"] == "Trucks")
    assert (trucks["sims"], trucks["sms_in"]) == (2, 4)
    by_day = api.get(f"{M2M}/usage", params={"group_by": "day"}, headers=headers).json()
    assert by_day["sort"] == "key"
    assert by_day["usage"] == [
        {
            "start": clock.now().date().isoformat(),
            "sims": 3,
            "data_up_bytes": 0,
            "data_down_bytes": 0,
            "sms_out": 0,
            "sms_in": 6,
            "voice_seconds": 0,
        }
    ]
    refused = api.get(f"{M2M}/usage", params={"group_by": "label:"}, headers=headers)
    assert refused.status_code == 422
    assert "label:<key>" in refused.text


def test_an_account_sees_only_its_own_usage(
    api: TestClient, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    [theirs] = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id, first=700)
    with engine.connect() as conn:
        iccid = conn.execute(
            select(sim_cards.c.iccid).where(sim_cards.c.msisdn == theirs)
        ).scalar_one()
    count(engine, clock, iccid, (0, Totals(voice_seconds=60)))
    body = api.get(f"{M2M}/usage", headers=auth(api)).json()
    assert body["usage"] == []
