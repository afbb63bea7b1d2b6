"""Large requests end to end, and a worker process killed in the middle of one."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from m2m.clock import ManualClock
from m2m.storage.tables import callback_deliveries, request_items, sim_cards, sim_history
from tests.support.api import auth, configure, request
from tests.support.receiver import Receiver
from tests.support.servers import M2M_BIN, clean_env
from tests.support.sims import add_active_sims, count
from tests.support.waiting import wait_for


@pytest.mark.usefixtures("seeded")
def test_ten_thousand_devices_end_to_end(
    client: TestClient, engine: Engine, clock: ManualClock, receiver: Receiver
) -> None:
    msisdns = add_active_sims(engine, 10_000, clock.now())
    headers = auth(client)
    configure(client, headers, receiver.url)
    devices = [{"identifier": m, "identifierType": "MSISDN"} for m in msisdns]
    accepted = request(client, headers, "deactivation", devices)
    assert accepted.status_code == 202
    # Committed before the answer: every item is there at once.
    assert count(engine, request_items) == 10_000

    wait_for(lambda: receiver.count() >= 10_000, 120, "10,000 callbacks")
    messages = receiver.messages()
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 10_000
    assert {m["resultStatus"] for m in messages} == {"Success"}
    assert all(r.headers["x-callback-token"] == "encotest" for r in receiver.received)
    assert count(engine, sim_cards, sim_cards.c.state == "Deactivated") == 10_000 + 10  # + demo
    assert count(engine, sim_history) == 10_000


@pytest.fixture
def worker_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return clean_env(
        tmp_path,
        M2M_DATABASE_URL=database_url,
        M2M_SANDBOX="true",  # callbacks to the loopback receiver
        M2M_SIMULATOR_LATENCY_SECONDS="0.05",
        M2M_WORKER_BATCH_SIZE="50",
        M2M_WORKER_POLL_SECONDS="0.1",
        # The adapter gets half the lease per call: 2 s leaves room for a loaded CI machine.
        M2M_ITEM_LEASE_SECONDS="4",
        M2M_CALLBACK_TIMEOUT_SECONDS="1",
    )


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen([M2M_BIN, "worker"], env=env, stdout=output, stderr=output)


def test_sigkilled_worker_loses_nothing_and_doubles_nothing(
    api: TestClient,
    engine: Engine,
    clock: ManualClock,
    receiver: Receiver,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    total = 1_500
    msisdns = add_active_sims(engine, total, clock.now())
    headers = auth(api)
    configure(api, headers, receiver.url)
    devices = [{"identifier": m, "identifierType": "MSISDN"} for m in msisdns]
    assert request(api, headers, "deactivation", devices).status_code == 202

    log = tmp_path / "worker.log"
    first = start_worker(worker_env, log)
    done = request_items.c.status == "done"
    wait_for(lambda: count(engine, request_items, done) >= 200, 60, "the first items")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    finished_by_first = count(engine, request_items, done)
    assert finished_by_first < total, "the worker finished before it could be killed"

    second = start_worker(worker_env, log)
    try:
        wait_for(lambda: count(engine, request_items, done) == total, 120, "every item")
        delivered = callback_deliveries.c.status == "delivered"
        wait_for(lambda: count(engine, callback_deliveries, delivered) == total, 120, "delivery")
    finally:
        second.terminate()
        second.wait(timeout=10)
    assert second.returncode == 0, log.read_text()[-3000:]

    # Every item final exactly once: one state change and one message per device.
    with engine.connect() as conn:
        failures = conn.execute(
            select(request_items.c.messages).where(request_items.c.result_status != "Success")
        ).all()
    assert failures == []
    assert count(engine, sim_history) == total
    assert count(engine, callback_deliveries) == total
    with engine.connect() as conn:
        per_sim = conn.execute(
            select(sim_history.c.sim_id, func.count())
            .group_by(sim_history.c.sim_id)
            .having(func.count() > 1)
        ).all()
        ids = set(conn.execute(select(callback_deliveries.c.id)).scalars())
    assert per_sim == []
    # Every callback delivered at least once (a message in flight at the kill may come twice).
    received = {r.headers["webhook-id"] for r in receiver.received}
    assert received == ids
