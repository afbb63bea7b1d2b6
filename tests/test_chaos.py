"""The chaos script, shortened: workers and the API SIGKILLed mid-work lose and double nothing.

``scripts/chaos.py`` runs real ``m2m serve`` and ``m2m worker`` processes on a database of its
own (SQLite file, or a database it creates on the test PostgreSQL server) and checks the outcome
in that database and at its callback receiver; here it runs with fewer requests and faster kills.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.constants import POSTGRES_URL

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "chaos.py"
DATABASES = ["sqlite", "postgresql"]


def run_chaos(*args: str) -> dict[str, object]:
    env = {**os.environ, "M2M_TEST_POSTGRES_URL": POSTGRES_URL}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--json", "--timeout", "180"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"no report; stderr:\n{done.stderr[-3000:]}"
    report: dict[str, object] = json.loads(lines[-1])
    assert report["problems"] == [], done.stderr[-3000:]
    assert done.returncode == 0
    return report


@pytest.mark.parametrize("database", DATABASES)
def test_killed_workers_lose_and_double_nothing(database: str) -> None:
    report = run_chaos(
        "workers",
        "--database",
        database,
        "--workers",
        "3",
        "--requests",
        "36",
        "--devices",
        "20",
        "--groups",
        "4",
        "--kill-every",
        "0.7",
        "--seed",
        "1",
    )
    items = 36 * 20
    assert report["workers_killed"] >= 1  # the run outlasted at least one kill
    assert report["final"] == report["success"] == report["state_changes"] == items
    assert report["callback_messages"] == report["messages_delivered"] == items
    assert report["callbacks_received"] == items
    assert report["sims_out_of_order"] == report["lost"] == 0


@pytest.mark.parametrize("database", DATABASES)
def test_api_killed_mid_posts_keeps_every_answered_request_whole(database: str) -> None:
    report = run_chaos("api", "--database", database, "--posts", "300", "--seed", "1")
    assert 0 < report["answered_202"] < 300  # the kill landed while requests were in flight
    assert report["answered_requests_missing"] == report["answered_requests_incomplete"] == 0
    assert report["partial_requests"] == report["orphan_items"] == 0
