"""Updating SIMs from the SDK (``update_sim``, sync and async) and the CLI (``m2m sim update``,
one SIM or a CSV in bulk), against the real server on loopback; and what the CLI builds from its
options and files (``m2m.cli.sim_changes``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner, Result

from m2m.cli.main import app
from m2m.cli.sim_changes import ChangesError, patch_from_options, rows_from_file
from m2m.client import (
    AsyncM2MClient,
    InvalidRequestError,
    M2MClient,
    NotFoundError,
    PreconditionFailedError,
)
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET, demo_iccid
from m2m.storage.tables import audit_events, idempotency_keys
from tests.support.events import of_type, stored_events

ICCID = demo_iccid(1)


def counted(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


# --- what the options and files say ------------------------------------------------------------


def test_options_become_a_merge_patch() -> None:
    assert patch_from_options(
        labels=["site=ghent", "old=", "url=a=b"],
        custom_fields=["3=blue", "7="],
        cost_center="",
        thresholds=["data.daily=1000", "sms.monthly="],
    ) == {
        "CostCenter": None,
        "Labels": {"site": "ghent", "old": None, "url": "a=b"},
        "CustomFields": {"Custom Field 3": "blue", "Custom Field 7": None},
        "DataService": {"DailyTreshold": 1000},
        "SMSService": {"MonthlyTreshold": None},
    }
    assert patch_from_options() == {}


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"labels": ["nosign"]}, "KEY=VALUE"),
        ({"custom_fields": ["8=x"]}, "1 to 7"),
        ({"thresholds": ["data.weekly=1"]}, "daily|monthly"),
        ({"thresholds": ["data.daily=-1"]}, "whole number"),
    ],
)
def test_bad_options_say_what_is_wrong(options: dict[str, list[str]], fragment: str) -> None:
    with pytest.raises(ChangesError, match=fragment):
        patch_from_options(**options)


def test_a_file_becomes_one_patch_a_row_with_a_key_from_content_and_line() -> None:
    content = (
        b"iccid,cost_center,custom_field_2,data_daily_threshold,label:site\n"
        b"8932000000000000001,cc,,10,ghent\n"
        b"\n"
        b"8932000000000000002,,x,,\n"
    )
    first, second = rows_from_file(content)
    assert (first.line, first.iccid) == (2, "8932000000000000001")
    assert first.patch == {
        "CostCenter": "cc",
        "DataService": {"DailyTreshold": 10},
        "Labels": {"site": "ghent"},
    }
    assert (second.line, second.patch) == (4, {"CustomFields": {"Custom Field 2": "x"}})
    assert rows_from_file(content)[0].idempotency_key == first.idempotency_key
    assert rows_from_file(content + b"\n")[0].idempotency_key != first.idempotency_key
    cleared = rows_from_file(content, empty_clears=True)[1].patch
    assert cleared["CostCenter"] is None
    assert cleared["Labels"] == {"site": None}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"cost_center\nx\n", "line 1: the header needs an iccid column"),
        (b"iccid,colour\n1,red\n", "line 1: unknown column 'colour'"),
        (b"iccid,cost_center\n1,a\n2\n", "line 3: 1 cells"),
        (b"iccid,data_daily_threshold\n1,5\n2,lots\n", "line 3: data_daily_threshold"),
        (b"iccid,cost_center\n,a\n", "line 2: no iccid"),
        (b"iccid\n\xff\n", "not UTF-8"),
    ],
)
def test_a_bad_file_names_its_line(content: bytes, fragment: str) -> None:
    with pytest.raises(ChangesError, match=fragment):
        rows_from_file(content)


# --- the SDK ----------------------------------------------------------------------------------


def test_the_sdk_updates_a_sim_conditionally(sandbox_server: str, engine: Engine) -> None:
    with M2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as m2m:
        sim = m2m.update_sim(ICCID, {"Labels": {"site": "ghent"}, "CostCenter": "c"})
        assert sim.iccid == ICCID
        assert sim.msisdn == "32470000001"
        assert sim.labels == {"site": "ghent"}
        assert sim.cost_center == "c"
        assert sim.etag == '"2"'
        again = m2m.update_sim(ICCID, {"Labels": {"site": None}}, if_match=sim.etag)
        assert again.labels == {}
        assert again.etag == '"3"'
        with pytest.raises(PreconditionFailedError):
            m2m.update_sim(ICCID, {"CostCenter": "d"}, if_match=sim.etag)
        with pytest.raises(InvalidRequestError, match="lifecycle requests"):
            m2m.update_sim(ICCID, {"State": "Active"})
        with pytest.raises(NotFoundError):
            m2m.update_sim("8932000000000000000", {"CostCenter": "d"})
        # One key, two sends: the second is the first's answer.
        first = m2m.update_sim(ICCID, {"CostCenter": "e"}, idempotency_key="k1")
        replay = m2m.update_sim(ICCID, {"CostCenter": "e"}, idempotency_key="k1")
        assert replay == first
        assert replay.etag == first.etag
    assert counted(engine, audit_events) == 3


def test_the_sdk_sends_a_key_with_each_lifecycle_request(
    sandbox_server: str, engine: Engine
) -> None:
    with M2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as m2m:
        first = m2m.request("deactivation", ["32470000002"], "t", idempotency_key="deact-2")
        again = m2m.request("deactivation", ["32470000002"], "t", idempotency_key="deact-2")
        assert again == first
        m2m.deactivate(["32470000003"], "t")
    assert counted(engine, idempotency_keys) == 2  # its own key for the one without


def test_the_async_sdk_updates_too(sandbox_server: str) -> None:
    async def scenario() -> None:
        async with AsyncM2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as m2m:
            sim = await m2m.update_sim(ICCID, {"SMSService": {"DailyTreshold": 7}})
            assert sim.sms_service.daily_threshold == 7
            assert sim.etag == '"2"'

    asyncio.run(scenario())


# --- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli(sandbox_server: str, tmp_path: Path) -> CliRunner:
    return CliRunner(
        env={
            "M2M_BASE_URL": sandbox_server,
            "M2M_CLIENT_ID": CLIENT_ID,
            "M2M_CLIENT_SECRET": CLIENT_SECRET,
            "M2M_API_KEY": API_KEY,
            "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
            "M2M_PROFILE": None,
            "M2M_CONFIG": None,
            "M2M_TOKEN": None,
        }
    )


def run(cli: CliRunner, *args: str, exit_code: int = 0) -> Result:
    result = cli.invoke(app, list(args))
    assert result.exit_code == exit_code, (result.output, result.exception)
    return result


def test_m2m_sim_update(cli: CliRunner) -> None:
    result = run(
        cli,
        "sim",
        "update",
        ICCID,
        "--label",
        "site=ghent",
        "--custom-field",
        "3=blue",
        "--cost-center",
        "fleet",
        "--threshold",
        "data.daily=1000",
        "--json",
    )
    sim = json.loads(result.stdout)
    assert sim["Labels"] == {"site": "ghent"}
    assert sim["CustomFields"]["Custom Field 3"] == "blue"
    assert sim["CostCenter"] == "fleet"
    assert sim["DataService"]["DailyTreshold"] == 1000
    table = run(cli, "sim", "update", ICCID, "--label", "site=", "--if-match", '"2"').stdout
    assert "ICCID" in table
    assert '"3"' in table
    assert "site" not in table
    refused = run(
        cli, "sim", "update", ICCID, "--cost-center", "x", "--if-match", '"2"', exit_code=1
    )
    assert "changed" in refused.stderr
    usage = run(cli, "sim", "update", ICCID, exit_code=2)
    assert "nothing to change" in usage.stderr
    assert "1 to 7" in run(cli, "sim", "update", ICCID, "--custom-field", "9=x", exit_code=2).stderr


def test_m2m_sim_update_from_a_file_is_safe_to_run_again(
    cli: CliRunner, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "changes.csv"
    path.write_text(
        "iccid,cost_center,label:fleet\n"
        f"{demo_iccid(1)},north,a\n"
        "8932000000000000000,south,b\n"
        f"{demo_iccid(2)},east,c\n"
    )
    result = run(cli, "sim", "update", "--from", str(path), "--json", exit_code=1)
    updated = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(s["ICCID"], s["CostCenter"]) for s in updated] == [
        (demo_iccid(1), "north"),
        (demo_iccid(2), "east"),
    ]
    assert "line 3" in result.stderr
    assert "Updated 2 SIM(s), 1 refused." in result.stderr
    assert counted(engine, audit_events) == 2
    assert [e["sim"]["ICCID"] for e in of_type(stored_events(engine), "sim.updated")] == [
        demo_iccid(1),
        demo_iccid(2),
    ]
    again = run(cli, "sim", "update", "--from", str(path), exit_code=1)
    assert "Updated 2 SIM(s), 1 refused." in again.stderr
    assert counted(engine, audit_events) == 2  # replayed, not updated again
    assert len(of_type(stored_events(engine), "sim.updated")) == 2  # nor a second event
    path.write_text("iccid,cost_center\n1,a\n2\n")
    bad = run(cli, "sim", "update", "--from", str(path), exit_code=2)
    assert "line 3" in bad.stderr
