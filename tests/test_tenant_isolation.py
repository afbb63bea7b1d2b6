"""One customer cannot hurt another (issue 11), as a user would see it, on both databases: a
hanging receiver with a large backlog beside another account's one message; a receiver that
fails for a while, then recovers; a huge request beside a one-device request of another account.

Callback order: the documentation promises per-SIM order for *executing* requests (state changes
in acceptance order), not for delivering their messages (at least once, retried, many in flight
at a time), so these tests check that every message arrives and that each SIM's state changes
happened in acceptance order.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import Engine, func, select

from m2m.audit import ADMIN_CLI
from m2m.callbacks.configuration import save_callback
from m2m.clock import ManualClock, SystemClock
from m2m.lifecycle import Operation
from m2m.settings import Settings
from m2m.storage import callback_configs
from m2m.storage.tables import (
    callback_attempts,
    callback_deliveries,
    lifecycle_requests,
    request_items,
    sim_cards,
    sim_history,
)
from m2m.worker_setup import running_worker, worker_parts
from tests.support.intake import accept
from tests.support.receiver import Receiver
from tests.support.sims import add_active_sims
from tests.support.tenants import Tenant
from tests.support.waiting import wait_for


def count(engine: Engine, query: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def open_items(engine: Engine, account_id: int) -> int:
    return count(
        engine,
        select(func.count())
        .select_from(request_items.join(lifecycle_requests))
        .where(lifecycle_requests.c.account_id == account_id, request_items.c.status != "done"),
    )


def messages(engine: Engine, account_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    callback_deliveries.c.id,
                    callback_deliveries.c.status,
                    callback_deliveries.c.attempts,
                    callback_deliveries.c.claim_id,
                ).where(callback_deliveries.c.account_id == account_id)
            )
        )


def breaker(engine: Engine, account_id: int) -> callback_configs.BreakerState:
    with engine.connect() as conn:
        [(_url, state)] = callback_configs.breakers(conn, [account_id]).values()
    return state


def states_in_acceptance_order(engine: Engine, msisdns: list[str], expected: list[str]) -> None:
    """Each SIM went through ``expected`` (its to_states), in that order."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(sim_cards.c.msisdn, sim_history.c.to_state)
            .join(sim_cards, sim_cards.c.id == sim_history.c.sim_id)
            .where(sim_cards.c.msisdn.in_(msisdns))
            .order_by(sim_history.c.id)
        ).all()
    per_sim: dict[str, list[str]] = {}
    for msisdn, to_state in rows:
        per_sim.setdefault(msisdn, []).append(to_state)
    assert per_sim == dict.fromkeys(msisdns, expected)


# --- a receiver that hangs, then comes back ------------------------------------------------------


@dataclass
class HangingReceiver:
    """Accepts connections and reads each request, then never answers while ``hanging``; once
    it is cleared, answers 200 (and records the message) like any receiver."""

    url: str = ""
    hanging: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    received: dict[str, int] = field(default_factory=dict)  # webhook-id: times answered 200
    held: int = 0  # requests left unanswered
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def hanging_receiver() -> Iterator[HangingReceiver]:
    receiver = HangingReceiver()
    receiver.hanging.set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            if receiver.hanging.is_set():
                with receiver.lock:
                    receiver.held += 1
                # Hold the connection without a word until the test ends (the sender gives up
                # on its own timeout); never answer late.
                receiver.stop.wait()
                self.close_connection = True
                return
            with receiver.lock:
                webhook_id = self.headers["webhook-id"]
                receiver.received[webhook_id] = receiver.received.get(webhook_id, 0) + 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 1024
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/callback"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_hanging_receiver_does_not_hold_back_another_accounts_callback(
    settings: Settings,
    engine: Engine,
    tenant: Tenant,
    other_tenant: Tenant,
    receiver: Receiver,
) -> None:
    """A's receiver accepts connections and never answers, with 2,000 of A's messages due; B's
    callback still arrives within 2 s of B's item finishing. Then A's receiver comes back: A's
    whole backlog is delivered, nothing lost, each message's retry budget intact.

    The bound is generous on purpose: the worker claims B's message within one round (50 ms)
    and a loopback POST takes milliseconds; before fair delivery, B's message queued behind
    every one of A's, each holding a slot for the whole 3 s timeout (about 90 s here). 2 s is
    the issue's own guarantee, and it leaves room for a loaded CI machine.
    """
    clock = SystemClock()
    live = settings.model_copy(
        update={
            "callback_timeout_seconds": 3.0,
            "callback_connect_timeout_seconds": 1.0,
            "callback_retry_schedule": [1.0] * 10,
            "callback_breaker_max_cooldown_seconds": 1.0,
        }
    )
    a_sims = add_active_sims(engine, 1000, clock.now(), account_id=tenant.account_id, first=0)
    [b_sim] = add_active_sims(
        engine, 1, clock.now(), account_id=other_tenant.account_id, first=5000
    )
    save_callback(engine, clock, other_tenant.account_id, receiver.url, {}, actor=ADMIN_CLI)

    async def scenario(hanging: HangingReceiver) -> None:
        save_callback(engine, clock, tenant.account_id, hanging.url, {}, actor=ADMIN_CLI)
        async with running_worker(live, engine, clock):
            # Two requests on the same SIMs: 2,000 messages, and a per-SIM order to keep.
            accept(engine, clock, tenant.account_id, Operation.DEACTIVATION, a_sims)
            accept(engine, clock, tenant.account_id, Operation.REACTIVATION, a_sims)
            await asyncio.to_thread(
                wait_for, lambda: open_items(engine, tenant.account_id) == 0, 60, "A's items"
            )
            # A's messages now hold every slot A may hold, and the rest of them are due.
            await asyncio.to_thread(wait_for, lambda: hanging.held >= 20, 10, "A's receiver hangs")

            accept(engine, clock, other_tenant.account_id, Operation.DEACTIVATION, [b_sim])
            await asyncio.to_thread(
                wait_for, lambda: receiver.count() == 1, 10, "B's callback", interval=0.01
            )
            arrived = datetime.now(UTC)
            with engine.connect() as conn:
                finished = conn.execute(
                    select(request_items.c.finished_at)
                    .join(lifecycle_requests)
                    .where(lifecycle_requests.c.account_id == other_tenant.account_id)
                ).scalar_one()
            assert arrived - finished < timedelta(seconds=2)
            assert receiver.messages()[0]["resultStatus"] == "Success"

            # A's receiver times out again and again: its breaker opens, and then A holds at
            # most one slot (the probe) while its messages wait.
            await asyncio.to_thread(
                wait_for,
                lambda: breaker(engine, tenant.account_id).trips >= 2,
                30,
                "A's breaker re-opened after a failed probe",
            )
            in_flight = [m for m in messages(engine, tenant.account_id) if m.claim_id]
            assert len(in_flight) <= 1

            hanging.hanging.clear()  # A's receiver is back
            await asyncio.to_thread(
                wait_for,
                lambda: all(m.status == "delivered" for m in messages(engine, tenant.account_id)),
                90,
                "A's backlog delivered",
            )

    with hanging_receiver() as hanging:
        asyncio.run(scenario(hanging))
        backlog = messages(engine, tenant.account_id)
        assert len(backlog) == 2000
        assert {m.id for m in backlog} <= set(hanging.received)  # each one answered 200
        # Held back by the breaker, not attempted: no message came near its 10 attempts.
        assert max(m.attempts for m in backlog) <= 3
        attempts = count(engine, select(func.count()).select_from(callback_attempts))
        assert attempts < 2000 + 200
    states_in_acceptance_order(engine, a_sims, ["Deactivated", "Active"])


def test_a_failing_receiver_trips_the_breaker_one_probe_at_a_time_then_gets_everything(
    settings: Settings,
    engine: Engine,
    clock: ManualClock,
    tenant: Tenant,
    receiver: Receiver,
) -> None:
    """A receiver answering 500 for a while, then 200: the breaker opens after 5 failures, while
    it is open nothing is sent (old or new messages), each cool-down ends with exactly one probe
    even with two workers claiming at once, and once a probe succeeds the whole backlog goes
    out at once. Nothing is lost, and the wait spends no message's retry budget."""
    quiet = settings.model_copy(update={"embedded_worker": False})
    save_callback(engine, clock, tenant.account_id, receiver.url, {}, actor=ADMIN_CLI)
    receiver.fail_first = 1_000_000
    msisdns = add_active_sims(engine, 21, clock.now(), account_id=tenant.account_id, first=0)
    accept(engine, clock, tenant.account_id, Operation.DEACTIVATION, msisdns[:20])

    async def run(steps: int = 1) -> None:
        async with (
            worker_parts(quiet, engine, clock) as one,
            worker_parts(quiet, engine, clock) as two,
        ):
            while await one.process_items():
                pass
            for _ in range(steps):
                await asyncio.gather(one.deliver_callbacks(), two.deliver_callbacks())

    asyncio.run(run())
    assert receiver.count() == 20  # claimed together, before any failure was recorded
    opened = breaker(engine, tenant.account_id)
    assert opened.trips == 1
    assert opened.open_until == clock.now() + timedelta(seconds=10)  # the first retry delay

    # Open: the messages' own retries come due (10 s ± 20%), and a new message is written.
    clock.advance(9)
    accept(engine, clock, tenant.account_id, Operation.DEACTIVATION, msisdns[20:])
    asyncio.run(run(3))
    assert receiver.count() == 20

    # The cool-down ends: one probe, whichever worker takes it; it fails: 30 s more.
    clock.advance(1)
    asyncio.run(run(3))
    assert receiver.count() == 21
    assert breaker(engine, tenant.account_id).trips == 2
    clock.advance(29)
    asyncio.run(run(3))
    assert receiver.count() == 21

    # The receiver recovers; the next probe succeeds and everything goes out.
    receiver.fail_first = 0
    clock.advance(1)
    asyncio.run(run(3))
    assert breaker(engine, tenant.account_id) == callback_configs.BreakerState()
    backlog = messages(engine, tenant.account_id)
    assert len(backlog) == 21
    assert all(m.status == "delivered" for m in backlog)
    assert max(m.attempts for m in backlog) <= 3
    delivered_ids = {r.headers["webhook-id"] for r in receiver.received[21:]}
    assert delivered_ids == {m.id for m in backlog}
    assert receiver.count() == 21 + 21


def test_a_one_device_request_does_not_wait_for_another_accounts_huge_requests(
    settings: Settings,
    engine: Engine,
    clock: ManualClock,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    """A's 3 requests of 3,000 devices (the issue's 10 x 10,000, scaled for CI) are accepted,
    then B's one-device request: B's item finishes within the next batch or two of A's work, not
    after all of it. Measured against A's own progress, not the wall clock: how many of A's items
    finished between B's acceptance and B's item finishing (before fair execution: all 9,000)."""
    live = settings.model_copy(update={"worker_batch_size": 500})
    a_sims = add_active_sims(engine, 9000, clock.now(), account_id=tenant.account_id, first=0)
    [b_sim] = add_active_sims(
        engine, 1, clock.now(), account_id=other_tenant.account_id, first=20_000
    )

    def a_done() -> int:
        return 9000 - open_items(engine, tenant.account_id)

    async def scenario() -> tuple[int, int]:
        async with running_worker(live, engine, clock):
            for part in range(3):
                accept(
                    engine,
                    clock,
                    tenant.account_id,
                    Operation.DEACTIVATION,
                    a_sims[part * 3000 : (part + 1) * 3000],
                )
            before = a_done()
            accept(engine, clock, other_tenant.account_id, Operation.DEACTIVATION, [b_sim])
            await asyncio.to_thread(
                wait_for, lambda: open_items(engine, other_tenant.account_id) == 0, 60, "B's item"
            )
            after = a_done()
            await asyncio.to_thread(
                wait_for, lambda: open_items(engine, tenant.account_id) == 0, 120, "A's items"
            )
            return before, after

    before, after = asyncio.run(scenario())
    # At most the batch in flight when B arrived, B's own batch (shared with A) and one more
    # that may finish before this test looks: 3 batches of 500, of A's 9,000.
    assert after - before <= 1500
    states_in_acceptance_order(engine, a_sims, ["Deactivated"])
