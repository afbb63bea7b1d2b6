"""Usage through the SDK and ``m2m usage``, against the real server on loopback (both
databases): a SIM's days and thresholds, the account's top users followed page by page, and
the table, JSON and CSV the CLI prints."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from m2m.cli.main import app
from m2m.client import M2MClient, NotFoundError
from m2m.clock import ManualClock
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET
from m2m.storage import usage_ingest
from m2m.storage.engine import write_transaction
from m2m.usage import Totals
from m2m.usage_records import UsageRecord
from tests.support.usage import sandbox_sim

Cli = Callable[..., Result]


def counted(engine: Engine, clock: ManualClock, usage: dict[str, Totals]) -> None:
    records = [
        UsageRecord(iccid, None, clock.now() - timedelta(minutes=5), None, totals)
        for iccid, totals in usage.items()
    ]
    with write_transaction(engine) as conn:
        usage_ingest.ingest(conn, "client-test", records, clock.now())


@pytest.fixture
def three(engine: Engine, sandbox_server: str, clock: ManualClock) -> list[str]:
    iccids = [sandbox_sim(engine, n)[0] for n in range(3)]
    counted(
        engine,
        clock,
        {
            iccid: Totals(data_down_bytes=(n + 1) * 2_000_000, sms_out=n)
            for n, iccid in enumerate(iccids)
        },
    )
    return iccids


@pytest.fixture
def cli(sandbox_server: str, tmp_path: Path) -> Cli:
    runner = CliRunner()
    env = {
        "M2M_BASE_URL": sandbox_server,
        "M2M_CLIENT_ID": CLIENT_ID,
        "M2M_CLIENT_SECRET": CLIENT_SECRET,
        "M2M_API_KEY": API_KEY,
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "M2M_PROFILE": None,
        "M2M_CONFIG": None,
        "M2M_TOKEN": None,
    }

    def invoke(*args: str, exit_code: int = 0) -> Result:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == exit_code, (result.output, result.exception)
        return result

    return invoke


def test_the_sdk_reads_a_sims_days_and_the_top_users_page_by_page(
    sandbox_server: str, three: list[str]
) -> None:
    with M2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as client:
        usage = client.sim_usage(three[2], granularity="day")
        assert usage.iccid == three[2]
        assert len(usage.usage) == 30
        assert usage.usage[-1].data_bytes == 6_000_000
        data_daily = next(t for t in usage.thresholds if (t.service, t.period) == ("data", "daily"))
        assert data_daily.used == 6.0
        top = list(client.usage(sort="data", page_size=1))
        assert [g.iccid for g in top] == list(reversed(three))
        with pytest.raises(NotFoundError):
            client.sim_usage("89320199999999999990")


def test_m2m_usage_shows_a_sims_days_with_its_thresholds(cli: Cli, three: list[str]) -> None:
    shown = cli("usage", three[0], "--since", "7d").stdout
    assert "data daily threshold" in shown
    assert "2.000" in shown  # MB today
    rows = list(
        csv.DictReader(io.StringIO(cli("usage", three[0], "--since", "2d", "--csv").stdout))
    )
    assert len(rows) == 2
    assert rows[-1]["data_down_bytes"] == "2000000"
    answer = json.loads(cli("usage", "sim", three[0], "--by", "month", "--json").stdout)
    assert answer["granularity"] == "month"
    assert answer["ICCID"] == three[0]


def test_m2m_usage_top_lists_the_largest_users(cli: Cli, three: list[str]) -> None:
    rows = json.loads(cli("usage", "top", "--limit", "2", "--json").stdout)
    assert [row["ICCID"] for row in rows] == [three[2], three[1]]
    by_sms = list(csv.DictReader(io.StringIO(cli("usage", "top", "--by", "sms", "--csv").stdout)))
    assert by_sms[0]["ICCID"] == three[2]
    assert by_sms[0]["sms_out"] == "2"
    refused = cli("usage", "top", "--month", "November", exit_code=2)
    assert "a month such as 2026-11" in refused.output
