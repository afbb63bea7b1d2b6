"""The event log from the SDK (``events()`` lazily page by page, sync and async;
``events_page()``) and from ``m2m events tail`` (what is there, then new events as they are
stored; ``--json`` lines, ``--type``, ``--since-cursor``), against the real server on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from m2m.cli.main import app
from m2m.client import AsyncM2MClient, Event, M2MClient
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET
from tests.support.server_process import M2M_BIN

# The sandbox's SIMs 1-50 are Active.
ACTIVE = [str(32470000000 + n) for n in range(1, 6)]


@pytest.fixture
def m2m(sandbox_server: str) -> Iterator[M2MClient]:
    with M2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as client:
        yield client


def _deactivate(m2m: M2MClient, msisdns: list[str]) -> str:
    tracking = m2m.deactivate(msisdns, callback_token="t")
    m2m.wait([tracking], poll_seconds=0.05, timeout=60)
    return tracking


def test_events_are_read_lazily_page_by_page(m2m: M2MClient) -> None:
    tracking = _deactivate(m2m, ACTIVE[:3])

    found = list(m2m.events(page_size=2))
    assert [e.type for e in found] == ["sim.state_changed"] * 3 + ["request.completed"]
    assert all(isinstance(e, Event) for e in found)
    assert found[-1].data["TrackingNumber"] == tracking
    assert found[0].sim is not None
    assert found[0].sim.msisdn in ACTIVE

    iterator = m2m.events(page_size=1)
    assert next(iterator).id == found[0].id  # one page asked for, not the whole log
    assert [e.id for e in m2m.events(after=found[1].id)] == [e.id for e in found[2:]]
    assert [e.type for e in m2m.events(type=["request.*"])] == ["request.completed"]

    page = m2m.events_page(found[-1].id)
    assert page.events == []
    assert page.cursor == found[-1].id


def test_the_async_client_reads_the_same_events(m2m: M2MClient, sandbox_server: str) -> None:
    _deactivate(m2m, ACTIVE[:2])

    async def read() -> list[str]:
        async with AsyncM2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as client:
            return [e.id async for e in client.events(page_size=1, type=["sim.*"])]

    assert asyncio.run(read()) == [e.id for e in m2m.events(type=["sim.state_changed"])]


def _tail(sandbox_server: str, xdg: Path, *args: str) -> Result:
    env = {
        "M2M_BASE_URL": sandbox_server,
        "M2M_CLIENT_ID": CLIENT_ID,
        "M2M_CLIENT_SECRET": CLIENT_SECRET,
        "M2M_API_KEY": API_KEY,
        "XDG_CONFIG_HOME": str(xdg),
    }
    result = CliRunner().invoke(app, ["events", "tail", "--no-follow", *args], env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_tail_prints_json_lines_and_the_cursor_to_resume_from(
    m2m: M2MClient, sandbox_server: str, tmp_path: Path
) -> None:
    _deactivate(m2m, ACTIVE[:2])
    result = _tail(sandbox_server, tmp_path, "--json", "--type", "sim.*")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["type"] for e in lines] == ["sim.state_changed"] * 2
    assert {e["sim"]["MSISDN"] for e in lines} == set(ACTIVE[:2])
    assert f"cursor: {lines[-1]['id']}" in result.stderr

    _deactivate(m2m, ACTIVE[2:3])
    resumed = _tail(sandbox_server, tmp_path, "--json", "--since-cursor", lines[-1]["id"])
    assert [json.loads(line)["type"] for line in resumed.stdout.splitlines()] == [
        "request.completed",  # the first request's, after its last state change
        "sim.state_changed",
        "request.completed",
    ]
    table = _tail(sandbox_server, tmp_path, "--type", "sim.state_changed")
    assert "Active -> Deactivated (deactivation)" in table.stdout


def test_tail_follows_new_events_as_they_are_stored(
    m2m: M2MClient, sandbox_server: str, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("M2M_")},
        "M2M_BASE_URL": sandbox_server,
        "M2M_CLIENT_ID": CLIENT_ID,
        "M2M_CLIENT_SECRET": CLIENT_SECRET,
        "M2M_API_KEY": API_KEY,
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    with subprocess.Popen(
        [M2M_BIN, "events", "tail", "--json", "--poll-seconds", "0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            _deactivate(m2m, ACTIVE[:1])
            first = [json.loads(process.stdout.readline()) for _ in range(2)]
            assert [e["type"] for e in first] == ["sim.state_changed", "request.completed"]
            assert process.poll() is None  # still following
            _deactivate(m2m, ACTIVE[1:2])
            later = [json.loads(process.stdout.readline()) for _ in range(2)]
            assert [e["type"] for e in later] == ["sim.state_changed", "request.completed"]
            assert int(later[0]["id"]) > int(first[-1]["id"])
        finally:
            process.terminate()
            process.wait(timeout=30)
