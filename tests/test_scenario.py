"""Sandbox scenarios: the demo state plus a test suite's SIMs, accounts, callback and faults,
through ``POST /sandbox/scenario`` (both databases) and ``m2m serve --sandbox --scenario``."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from m2m.asgi import create_app
from m2m.clock import ManualClock
from m2m.sandbox import demo_iccid
from m2m.settings import Settings
from m2m.storage.tables import accounts
from tests.support.api import M2M, access_token, auth
from tests.support.server_process import serving
from tests.support.servers import M2M_BIN

NEW_ICCID = "89320199999999999915"  # Luhn-valid, far from the demo SIMs
SCENARIO: dict[str, Any] = {
    "sims": [
        {"msisdn": "32470000001", "state": "Deactivated"},
        {"iccid": NEW_ICCID, "imsi": "206019999999991", "msisdn": "32479999991"},
    ],
    "callback": {"url": "http://127.0.0.1:9/callbacks", "headers": {"x-test": "1"}},
    "accounts": [
        {
            "name": "Second tenant",
            "client_id": "tenant-b",
            "client_secret": "tenant-b-secret",
            "api_key": "tenant-b-api-key",
            "sims": [
                {
                    "iccid": "89320199999999999923",
                    "imsi": "206019999999992",
                    "msisdn": "32479999992",
                    "state": "Active",
                }
            ],
        }
    ],
    "faults": [{"identifier": "32470000002", "operation": "deactivation", "count": 1}],
}


@pytest.fixture
def sandbox(
    quiet: Settings, engine: Engine, clock: ManualClock, seeded: None
) -> Iterator[TestClient]:
    app = create_app(quiet, engine=engine, clock=clock)
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        yield client


def _state(client: TestClient, msisdn: str, headers: dict[str, str]) -> str:
    answer = client.get(f"{M2M}/simcards?msisdn={msisdn}", headers=headers)
    sims = answer.json()
    return str(sims[0]["State"]) if answer.status_code == 200 and sims else "absent"


def test_a_scenario_adds_to_the_demo_state(sandbox: TestClient) -> None:
    sandbox.post("/sandbox/clock", json={"advance": "1h"})
    assert sandbox.post("/sandbox/scenario", json=SCENARIO).status_code == 204

    headers = auth(sandbox)
    assert _state(sandbox, "32470000001", headers) == "Deactivated"
    assert _state(sandbox, "32479999991", headers) == "Ready"
    assert _state(sandbox, "32470000003", headers) == "Active"  # the rest is the demo state
    assert _state(sandbox, "32479999992", headers) == "absent"  # another tenant's
    callback = sandbox.get(f"{M2M}/configure/callback", headers=headers).json()
    assert callback["url"] == "http://127.0.0.1:9/callbacks"
    assert sandbox.get("/sandbox/faults").json()[0]["identifier"] == "32470000002"
    assert sandbox.get("/sandbox/clock").json()["realtime"]  # a reset came first

    token = access_token(sandbox, "tenant-b", "tenant-b-secret")
    tenant = {"Authorization": f"Bearer {token}", "x-api-key": "tenant-b-api-key"}
    assert _state(sandbox, "32479999992", tenant) == "Active"
    assert _state(sandbox, "32470000001", tenant) == "absent"


def test_a_scenario_replaces_the_previous_one(sandbox: TestClient) -> None:
    sandbox.post("/sandbox/scenario", json=SCENARIO)
    assert sandbox.post("/sandbox/scenario", json={}).status_code == 204
    headers = auth(sandbox)
    assert _state(sandbox, "32470000001", headers) == "Active"
    assert _state(sandbox, "32479999991", headers) == "absent"
    assert access_token(sandbox, "tenant-b", "tenant-b-secret") == ""
    assert sandbox.get("/sandbox/faults").json() == []


@pytest.mark.parametrize(
    ("scenario", "named"),
    [
        ({"sims": [{"msisdn": "32479999999"}]}, "not a demo SIM"),
        ({"sims": [{"msisdn": "32470000001", "state": "Gone"}]}, "state"),
        ({"sims": [{**SCENARIO["sims"][1], "iccid": demo_iccid(5)}]}, "iccid"),
        ({"sims": [{**SCENARIO["sims"][1], "iccid": "123"}]}, "ICCID"),
        ({"callback": {"url": "ftp://example.com/x"}}, "callback"),
        ({"callback": {"url": "http://10.0.0.1/x"}}, "callback"),
        ({"accounts": [{**SCENARIO["accounts"][0], "client_id": "sandbox-client"}]}, "client_id"),
        ({"faults": [{"identifier": "1", "kind": "boom"}]}, "kind"),
        ({"unknown": 1}, "unknown"),
        ({"usage": {"policy": "suspend"}}, "policy"),
        ({"usage": {"time_zone": "Mars/Olympus"}}, "time zone"),
        ({"usage": {"warning_percent": 0}}, "warning_percent"),
        ({"usage": {"warning_percent": "80"}}, "warning_percent"),
        ({"usage": {"reactivate_next_period": "yes"}}, "reactivate_next_period"),
    ],
)
def test_a_wrong_scenario_is_a_422_naming_it_and_changes_nothing(
    sandbox: TestClient, scenario: dict[str, Any], named: str
) -> None:
    sandbox.post("/sandbox/clock", json={"advance": "1h"})
    headers = auth(sandbox)
    answer = sandbox.post("/sandbox/scenario", json=scenario)
    assert answer.status_code == 422, answer.text
    assert named in json.dumps(answer.json())
    assert not sandbox.get("/sandbox/clock").json()["realtime"]  # no reset happened
    assert _state(sandbox, "32470000001", headers) == "Active"


def test_serve_starts_from_a_scenario_file(tmp_path: Path) -> None:
    scenario_file = tmp_path / "scenario.json"
    scenario_file.write_text(json.dumps(SCENARIO))
    with (
        serving(tmp_path, "--scenario", str(scenario_file)) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        token = client.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "tenant-b",
                "client_secret": "tenant-b-secret",
            },
        ).json()["access_token"]
        sims = client.get(
            f"{M2M}/simcards?msisdn=32479999992",
            headers={"Authorization": f"Bearer {token}", "x-api-key": "tenant-b-api-key"},
        ).json()
        assert sims[0]["State"] == "Active"
        faults = client.get("/sandbox/faults").json()
        assert [f["identifier"] for f in faults] == ["32470000002"]


def test_serve_refuses_a_wrong_scenario_file_in_one_line(tmp_path: Path) -> None:
    scenario_file = tmp_path / "scenario.json"
    scenario_file.write_text(json.dumps({"sims": [{"msisdn": "32479999999"}]}))
    done = subprocess.run(
        [M2M_BIN, "serve", "--sandbox", "--scenario", str(scenario_file)],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("M2M_")},
            "M2M_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "not a demo SIM" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_scenario_sets_the_accounts_usage_settings(sandbox: TestClient, engine: Engine) -> None:
    """An integrator's suite turns the usage policy on (and its reactivation) in the scenario,
    for the demo account and for another tenant; a reset puts the defaults back."""
    scenario = {
        **SCENARIO,
        "usage": {"policy": "deactivate", "reactivate_next_period": True},
        "accounts": [
            {
                **SCENARIO["accounts"][0],
                "usage": {"time_zone": "America/New_York", "warning_percent": 90},
            }
        ],
    }
    assert sandbox.post("/sandbox/scenario", json=scenario).status_code == 204

    def settings() -> dict[str, tuple[str, int, str, bool]]:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    accounts.c.name,
                    accounts.c.time_zone,
                    accounts.c.usage_warning_percent,
                    accounts.c.usage_policy,
                    accounts.c.usage_reactivate,
                )
            )
            return {row.name: tuple(row[1:]) for row in rows}

    found = settings()
    assert found["Second tenant"] == ("America/New_York", 90, "notify", False)
    assert [v for k, v in found.items() if k != "Second tenant"] == [
        ("UTC", 80, "deactivate", True)
    ]
    assert sandbox.post("/sandbox/reset").status_code == 204
    assert list(settings().values()) == [("UTC", 80, "notify", False)]
