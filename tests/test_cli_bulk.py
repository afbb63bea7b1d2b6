"""``m2m sim deactivate --from-file devices.csv --wait`` with 25,000 devices, end to end."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from m2m.asgi import create_app
from m2m.cli.main import app
from m2m.clock import ManualClock
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET
from m2m.settings import Settings
from m2m.storage.tables import lifecycle_requests, request_items, sim_cards
from tests.support.servers import free_port, run_server
from tests.support.sims import add_active_sims, count

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DEVICES = 25_000


@pytest.fixture
def big_batch_server(
    settings: Settings, engine: Engine, clock: ManualClock, seeded: None
) -> Iterator[str]:
    """``sandbox_server`` with bigger worker batches: the default suits many small requests, this
    test has three big."""
    big_batches = settings.model_copy(update={"worker_batch_size": 5_000})
    served = create_app(big_batches, engine=engine, clock=clock)
    with run_server(served, free_port(), lifespan="on") as base_url:
        yield base_url


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_twenty_five_thousand_devices_from_a_file(
    big_batch_server: str, engine: Engine, clock: ManualClock, tmp_path: Path
) -> None:
    """SQLite only: this is the CLI's pipeline (file, batches, progress, --wait) at size, which
    does not depend on the database; the server's PostgreSQL path at size is test_bulk's, and
    running this twice would double the suite's heaviest test for nothing new."""
    msisdns = add_active_sims(engine, DEVICES, clock.now())
    devices = tmp_path / "devices.csv"
    devices.write_text("msisdn\n" + "\n".join(msisdns) + "\n")

    result = CliRunner().invoke(
        app,
        ["sim", "deactivate", "--from-file", str(devices), "--wait", "--poll-seconds", "3"],
        env={
            "M2M_BASE_URL": big_batch_server,
            "M2M_CLIENT_ID": CLIENT_ID,
            "M2M_CLIENT_SECRET": CLIENT_SECRET,
            "M2M_API_KEY": API_KEY,
            "XDG_CONFIG_HOME": str(tmp_path),
        },
    )

    assert result.exit_code == 0, (result.output, result.exception)
    lines = result.stdout.splitlines()
    numbers = [line for line in lines if UUID.match(line)]
    assert len(numbers) == 3  # 10,000 + 10,000 + 5,000: the server's maximum per request
    for number in numbers:  # the summary names every request
        assert sum(number in line for line in lines) == 2
    for number in numbers:  # reported on stderr as each was accepted, too
        assert f"device(s): {number}" in result.stderr
    assert "Accepted 10000 device(s)" in result.stderr
    assert "Submitting" in result.stderr
    assert f"{DEVICES}/{DEVICES}" in result.stderr  # the progress bars reached the end
    assert count(engine, lifecycle_requests) == 3
    assert count(engine, request_items, request_items.c.status == "done") == DEVICES
    assert count(engine, sim_cards, sim_cards.c.state == "Deactivated") == DEVICES + 10  # + demo
