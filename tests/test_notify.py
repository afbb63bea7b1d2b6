"""A worker in another process (here: not linked to the API in any way) starts on new work as
soon as PostgreSQL notifies it, not at its next poll."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from m2m.clock import SystemClock
from m2m.settings import Settings
from m2m.storage.notify import WORK_CHANNEL
from m2m.worker_setup import running_worker
from tests.support.api import auth, msisdn, request
from tests.support.waiting import wait_for


def wait_for_listener(engine: Engine, timeout: float = 30) -> None:
    """Until a session of this database is listening on the work channel."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query = :listen"
    )

    def listening() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(query, {"listen": f"LISTEN {WORK_CHANNEL}"}).scalar_one())

    wait_for(listening, timeout, "the worker to listen for work", interval=0.05)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_notification_wakes_an_idle_standalone_worker(
    api: TestClient, quiet: Settings, engine: Engine
) -> None:
    # The worker polls once an hour, and the API has no worker of its own to nudge in-process:
    # only the notification sent at the request's commit can start the work within the test.
    settings = quiet.model_copy(update={"worker_poll_seconds": 3600})
    stop = threading.Event()

    def run_worker() -> None:
        async def main() -> None:
            async with running_worker(settings, engine, SystemClock()):
                while not stop.is_set():
                    await asyncio.sleep(0.05)

        asyncio.run(main())

    thread = threading.Thread(target=run_worker)
    thread.start()
    try:
        wait_for_listener(engine)
        time.sleep(0.2)  # the worker's first (empty) poll is over: it now waits for an hour
        headers = auth(api)
        accepted = request(api, headers, "deactivation", [msisdn(1)])
        assert accepted.status_code == 202
        status_url = f"/m2m/1.0.0/requests/{accepted.json()['TrackingNumber']}"
        deadline = time.monotonic() + 30
        while not (status := api.get(status_url, headers=headers).json())["finishedAt"]:
            assert time.monotonic() < deadline, f"the worker did not wake: {status}"
            time.sleep(0.05)
        assert status["devices"][0]["resultStatus"] == "Success"
    finally:
        stop.set()
        thread.join(timeout=30)
