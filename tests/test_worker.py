"""The worker driven step by step with a controllable clock: retries, failures, lease takeover."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from m2m.callbacks.retry import JITTER
from m2m.clock import ManualClock
from m2m.settings import DEFAULT_RETRY_SCHEDULE, Settings
from m2m.storage import item_queue, outbox
from m2m.storage.engine import write_transaction
from m2m.storage.tables import callback_attempts, callback_deliveries, request_items, sim_history
from tests.support.api import auth, configure, msisdn, request
from tests.support.receiver import Receiver
from tests.support.servers import M2M_BIN, clean_env
from tests.support.worker import drain


def attempts(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(callback_attempts.c.status_code, callback_attempts.c.error).order_by(
                    callback_attempts.c.id
                )
            )
        )


def delivery(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(callback_deliveries)).one()


def test_retries_until_the_receiver_recovers(
    api: TestClient,
    quiet: Settings,
    engine: Engine,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    headers = auth(api)
    configure(api, headers, receiver.url)
    receiver.fail_first = 3
    request(api, headers, "deactivation", [msisdn(5)])

    drain(quiet, engine, clock)  # executes the item, first attempt fails
    assert receiver.count() == 1
    for retry in range(3):
        before = receiver.count()
        delay = DEFAULT_RETRY_SCHEDULE[retry]
        clock.advance(delay * (1 - JITTER) - 1)  # not yet due
        drain(quiet, engine, clock)
        assert receiver.count() == before
        clock.advance(delay * 2 * JITTER + 2)  # due now, whatever the jitter
        drain(quiet, engine, clock)
        assert receiver.count() == before + 1
    row = delivery(engine)
    assert row.status == "delivered"
    assert row.attempts == 4
    recorded = attempts(engine)
    assert [a.status_code for a in recorded] == [500, 500, 500, 200]
    assert "HTTP 500" in recorded[0].error
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert ids == {row.id}  # the same message id on every attempt


def test_gives_up_after_the_schedule(
    api: TestClient,
    quiet: Settings,
    engine: Engine,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    short = quiet.model_copy(update={"callback_retry_schedule": [10.0, 20.0]})
    headers = auth(api)
    configure(api, headers, receiver.url)
    receiver.fail_first = 100
    request(api, headers, "deactivation", [msisdn(6)])
    drain(short, engine, clock)
    for _ in range(3):
        clock.advance(30)
        drain(short, engine, clock)
    assert receiver.count() == 3
    row = delivery(engine)
    assert row.status == "failed"
    assert row.attempts == 3


def test_a_redirect_is_a_failure_and_is_not_followed(
    api: TestClient,
    quiet: Settings,
    engine: Engine,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    headers = auth(api)
    configure(api, headers, receiver.url)
    receiver.status = 302
    request(api, headers, "deactivation", [msisdn(7)])
    drain(quiet, engine, clock)
    assert [r.path for r in receiver.received] == ["/callback"]  # /elsewhere never requested
    [(status, error)] = attempts(engine)
    assert status == 302
    assert "redirect" in error
    assert delivery(engine).status == "pending"


def test_a_slow_receiver_times_out(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_stay_silent() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
                accepted.append(connection)
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    try:
        fast = quiet.model_copy(update={"callback_timeout_seconds": 0.5})
        headers = auth(api)
        configure(api, headers, f"http://127.0.0.1:{listener.getsockname()[1]}/cb")
        request(api, headers, "deactivation", [msisdn(8)])
        drain(fast, engine, clock)
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()
    [(status, error)] = attempts(engine)
    assert status is None
    assert "timed out" in error


def test_a_receiver_that_cannot_be_reached_fails_within_the_connect_timeout(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock
) -> None:
    """Connecting has a short budget of its own: an address that drops connection attempts
    costs seconds, not the whole response timeout (a listener whose queue is full: the kernel
    drops further SYNs, as a firewall would)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        patient = quiet.model_copy(
            update={"callback_timeout_seconds": 20, "callback_connect_timeout_seconds": 0.5}
        )
        headers = auth(api)
        configure(api, headers, f"http://127.0.0.1:{port}/cb")
        request(api, headers, "deactivation", [msisdn(8)])
        started = time.monotonic()
        drain(patient, engine, clock)
        elapsed = time.monotonic() - started
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    [(status, error)] = attempts(engine)
    assert status is None
    assert error == "could not connect within 0.5 s"
    assert elapsed < 10  # far below the 20 s response timeout


def test_callbacks_to_loopback_are_refused_outside_the_sandbox(
    api: TestClient,
    quiet: Settings,
    engine: Engine,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    headers = auth(api)
    configure(api, headers, receiver.url)  # accepted in the sandbox
    request(api, headers, "deactivation", [msisdn(9)])
    production = quiet.model_copy(update={"sandbox": False})
    drain(production, engine, clock)
    assert receiver.count() == 0
    [(status, error)] = attempts(engine)
    assert status is None
    assert "refused" in error


def test_items_of_a_dead_worker_are_taken_over_once_the_lease_expires(
    api: TestClient,
    quiet: Settings,
    engine: Engine,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    headers = auth(api)
    configure(api, headers, receiver.url)
    request(api, headers, "deactivation", [msisdn(n) for n in range(1, 11)])
    now = clock.now()
    with write_transaction(engine) as conn:  # a worker claims everything, then dies
        claimed = item_queue.claim_items(conn, "dead-worker", now, now.replace(), 100)
    assert len(claimed) == 10
    clock.advance(1)
    drain(quiet, engine, clock)  # the lease (until `now`) has expired: taken over
    with engine.connect() as conn:
        done = conn.execute(
            select(func.count()).select_from(request_items).where(request_items.c.status == "done")
        ).scalar_one()
        changes = conn.execute(select(func.count()).select_from(sim_history)).scalar_one()
    assert done == 10
    assert changes == 10
    assert receiver.count() == 10
    # The dead worker coming back cannot record anything any more.
    with write_transaction(engine) as conn:
        assert item_queue.finish_items(conn, "dead-worker", [], clock.now()) == 0


def test_live_leases_are_respected(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock
) -> None:
    headers = auth(api)
    request(api, headers, "deactivation", [msisdn(20)])
    now = clock.now()
    with write_transaction(engine) as conn:
        far = now.replace(year=now.year + 1)
        assert len(item_queue.claim_items(conn, "busy-worker", now, far, 10)) == 1
    drain(quiet, engine, clock)
    with engine.connect() as conn:
        assert conn.execute(select(request_items.c.status)).scalar_one() == "claimed"


def test_m2m_worker_refuses_a_sqlite_database_that_does_not_exist(tmp_path: Path) -> None:
    """Started in the wrong folder, a worker would make an empty database and wait on it for
    work that never comes."""
    result = subprocess.run(
        [M2M_BIN, "worker"],
        env=clean_env(tmp_path / "data", M2M_SECRET_KEY="x" * 40),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: there is no database at {tmp_path / 'data' / 'm2m.db'}: ")
    assert "`m2m db upgrade`" in line
    assert list(tmp_path.iterdir()) == []


def test_an_attempt_on_a_message_deleted_meanwhile_is_dropped_not_a_stuck_round(
    api: TestClient,
    quiet: Settings,
    engine: Engine,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    """A sandbox reset (or a deleted account) removes messages while their attempts are in
    flight: recording those attempts must not fail the round (the worker would retry it for
    ever), and the other attempts of the round are recorded."""
    headers = auth(api)
    configure(api, headers, receiver.url)
    request(api, headers, "deactivation", [msisdn(5), msisdn(6)])
    drain(quiet, engine, clock)
    kept, gone = (row.id for row in _deliveries(engine))
    with write_transaction(engine) as conn:
        conn.execute(callback_deliveries.delete().where(callback_deliveries.c.id == gone))
    now = clock.now()
    records = [
        ("claim", outbox.AttemptRecord(d, 1, now, receiver.url, 200, None, 3, True, None))
        for d in (kept, gone)
    ]
    with write_transaction(engine) as conn:
        outbox.record_attempts(conn, records)
    with engine.connect() as conn:
        recorded = conn.execute(select(callback_attempts.c.delivery_id)).scalars().all()
    assert sorted(recorded) == sorted([kept, kept])  # its first attempt, and this one


def _deliveries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(callback_deliveries).order_by(callback_deliveries.c.id)))
