"""The console's SIM page shows the SIM's usage against its thresholds and its last 30 days,
on both databases."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from m2m.clock import ManualClock
from m2m.storage import usage_ingest
from m2m.storage.engine import write_transaction
from m2m.storage.tables import sim_cards
from m2m.usage import Totals
from m2m.usage_records import UsageRecord
from tests.support.console import sign_in


def test_the_sim_page_shows_usage_against_each_threshold(
    console: TestClient, engine: Engine, clock: ManualClock
) -> None:
    with engine.connect() as conn:
        sim_id, iccid, profile = conn.execute(
            select(sim_cards.c.id, sim_cards.c.iccid, sim_cards.c.profile).where(
                sim_cards.c.msisdn == "32470000001"
            )
        ).one()
    daily_mb = profile["DataService"]["DailyTreshold"]
    used = daily_mb * 1_000_000 // 2  # half of today's data threshold
    with write_transaction(engine) as conn:
        usage_ingest.ingest(
            conn,
            "console",
            [
                UsageRecord(
                    iccid,
                    None,
                    clock.now() - timedelta(minutes=1),
                    None,
                    Totals(data_down_bytes=used),
                )
            ],
            clock.now(),
        )
    sign_in(console, engine, clock)
    page = console.get(f"/console/sims/{sim_id}").text
    section = page[page.index('id="usage"') : page.index('id="usage-chart"')]
    daily = re.search(r'data-service="data" data-period="daily">(.*?)</li>', section, re.S)
    assert daily is not None
    assert f'max="{daily_mb}"' in daily.group(1)
    assert f"of {daily_mb:,} MB (50.0%)" in daily.group(1)
    assert 'data-service="sms" data-period="monthly"' in section  # the sandbox sets SMS ones too
    chart = page[page.index('id="usage-chart"') :]
    assert chart.count("<g>") == 30
    assert f"{used / 1_000_000:,.3f} MB in 30 days" in chart
