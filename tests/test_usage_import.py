"""``m2m admin usage import`` and ``m2m admin accounts usage-settings``, on both databases: a
file counted once however often it is imported, nothing counted from a file with a problem
(each named by its line), and the account's zone deciding which day usage belongs to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner, Result

from m2m.cli.main import app
from m2m.clock import ManualClock
from m2m.storage.tables import sim_cards, usage_daily
from tests.support.sims import add_active_sims
from tests.support.tenants import Tenant


@pytest.fixture
def admin(database_url: str) -> Any:
    runner = CliRunner()

    def invoke(*args: str, exit_code: int = 0) -> Result:
        result = runner.invoke(app, ["admin", *args], env={"M2M_DATABASE_URL": database_url})
        assert result.exit_code == exit_code, (result.output, result.exception)
        return result

    return invoke


def sim_ids(engine: Engine, clock: ManualClock, tenant: Tenant, count: int) -> list[str]:
    msisdns = add_active_sims(engine, count, clock.now(), account_id=tenant.account_id)
    with engine.connect() as conn:
        rows = conn.execute(
            select(sim_cards.c.iccid, sim_cards.c.msisdn).where(sim_cards.c.msisdn.in_(msisdns))
        )
        by_msisdn = {r.msisdn: r.iccid for r in rows}
    return [by_msisdn[m] for m in msisdns]


def data_used(engine: Engine) -> int:
    with engine.connect() as conn:
        total = conn.execute(
            select(func.sum(usage_daily.c.data_up_bytes + usage_daily.c.data_down_bytes))
        ).scalar()
    return int(total or 0)


def test_a_file_is_counted_once_however_often_it_is_imported(
    admin: Any, engine: Engine, clock: ManualClock, tenant: Tenant, tmp_path: Path
) -> None:
    first, second = sim_ids(engine, clock, tenant, 2)
    path = tmp_path / "usage.csv"
    path.write_text(
        "iccid,start,end,data_up_bytes,data_down_bytes,sms_out,network,country\n"
        f"{first},2026-11-30T10:00:00Z,2026-11-30T10:59:59Z,1000,2000,1,26201,de\n"
        f"{second},2026-11-30T11:00:00+01:00,,500,,,,\n",
        encoding="utf-8",
    )
    report = json.loads(admin("usage", "import", str(path), "--json").stdout)
    assert report == {
        "records": 2,
        "counted": 2,
        "already_counted": 0,
        "inactive": 0,
        "threshold_events": 0,
        "errors": [],
    }
    again = json.loads(admin("usage", "import", str(path), "--json").stdout)
    assert again["counted"] == 0
    assert again["already_counted"] == 2
    assert data_used(engine) == 3500


def test_a_file_with_a_problem_counts_nothing_and_names_each_line(
    admin: Any, engine: Engine, clock: ManualClock, tenant: Tenant, tmp_path: Path
) -> None:
    [known] = sim_ids(engine, clock, tenant, 1)
    path = tmp_path / "usage.csv"
    path.write_text(
        "iccid,start,data_up_bytes\n"
        f"{known},2026-11-30T10:00:00Z,1000\n"
        f"{known},yesterday,10\n"
        "89320199999999999990,2026-11-30T10:00:00Z,5\n",
        encoding="utf-8",
    )
    result = admin("usage", "import", str(path), "--json", exit_code=1)
    report = json.loads(result.stdout)
    assert report["counted"] == 0
    assert report["errors"] == [
        {"line": 3, "error": "start is not an RFC 3339 time such as 2026-12-01T10:00:00Z"}
    ]
    # Fixed, the unknown SIM is the one problem left, still counting nothing.
    path.write_text(
        "iccid,start,data_up_bytes\n"
        f"{known},2026-11-30T10:00:00Z,1000\n"
        "89320199999999999990,2026-11-30T10:00:00Z,5\n",
        encoding="utf-8",
    )
    report = json.loads(admin("usage", "import", str(path), "--json", exit_code=1).stdout)
    assert report["errors"] == [{"line": 3, "error": "no SIM with ICCID 89320199999999999990"}]
    assert data_used(engine) == 0


def test_the_accounts_time_zone_decides_the_day_usage_belongs_to(
    admin: Any, engine: Engine, clock: ManualClock, tenant: Tenant, tmp_path: Path
) -> None:
    account = str(tenant.account_id)
    settings = admin("accounts", "usage-settings", account, "--time-zone", "America/New_York")
    assert "usage days in America/New_York, warned at 80%" in settings.stdout
    shown = json.loads(admin("accounts", "usage-settings", account, "--json").stdout)
    assert shown["time_zone"] == "America/New_York"
    refused = admin(
        "accounts", "usage-settings", account, "--time-zone", "Mars/Olympus", exit_code=1
    )
    assert "Unknown time zone 'Mars/Olympus'" in refused.output
    [iccid] = sim_ids(engine, clock, tenant, 1)
    path = tmp_path / "late.csv"
    # 03:00 UTC on 1 December is still 30 November in New York.
    path.write_text(f"iccid,start,sms_out\n{iccid},2026-12-01T03:00:00Z,2\n", encoding="utf-8")
    admin("usage", "import", str(path))
    with engine.connect() as conn:
        assert str(conn.execute(select(usage_daily.c.day)).scalar()) == "2026-11-30"


def test_operator_tokens_are_shown_once_listed_by_hint_and_revoked(admin: Any) -> None:
    created = json.loads(admin("usage", "tokens", "create", "mediation", "--json").stdout)
    assert created["token"].startswith("m2mo_")
    listed = json.loads(admin("usage", "tokens", "list", "--json").stdout)
    assert [(t["name"], t["revoked_at"]) for t in listed] == [("mediation", None)]
    assert created["token"] not in json.dumps(listed)
    assert created["token"].startswith(listed[0]["hint"])
    admin("usage", "tokens", "revoke", str(created["token_id"]))
    again = admin("usage", "tokens", "revoke", str(created["token_id"]), exit_code=1)
    assert "No live operator token" in again.output
