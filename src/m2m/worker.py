"""The worker: executes accepted lifecycle items and delivers their callbacks.

Two loops run side by side in one asyncio task group:

- **items**: lease a batch of ready items (first in line for their SIM), decide each
  (``lifecycle.decide``), ask the network adapter for the changes, then record outcomes, state
  changes, history rows and callback messages in one transaction. A worker that dies leaves its
  leases to expire; another worker takes the items over. Recording is guarded by the lease, so a
  state change is applied exactly once.
- **deliveries**: lease due callback messages, POST them concurrently, record each attempt and
  the next retry (``retry.next_attempt_at``).

Database calls are synchronous (see docs/design-notes.md) and run in threads.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import Engine

from m2m.callbacks import CallbackSender, status_message
from m2m.clock import Clock
from m2m.identifiers import IdentifierType, SimState
from m2m.lifecycle import Decision, Operation, ResultStatus, decide, not_found
from m2m.network import NetworkAdapter, NetworkResult, SimRef
from m2m.storage import requests as store
from m2m.storage.engine import write_transaction

log = logging.getLogger("m2m.worker")
T = TypeVar("T")


def _sim_of(item: store.ClaimedItem) -> SimRef | None:
    if item.iccid is None or item.imsi is None or item.msisdn is None or item.state is None:
        return None  # no such SIM in the caller's account
    return SimRef(item.iccid, item.imsi, item.msisdn, SimState(item.state))


class Worker:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        adapter: NetworkAdapter,
        sender: CallbackSender,
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.5,
        lease_seconds: float = 60,
        callback_timeout_seconds: float = 15,
        callback_concurrency: int = 64,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._adapter = adapter
        self._sender = sender
        self._batch = batch_size
        self._poll = poll_seconds
        self._lease = timedelta(seconds=lease_seconds)
        # A claimed message becomes due again after twice the attempt's timeout: an attempt
        # cannot take longer than the timeout, so only a dead worker's messages come back.
        self._delivery_lease = timedelta(seconds=2 * callback_timeout_seconds)
        self._concurrency = asyncio.Semaphore(callback_concurrency)
        # A delivery lease must outlive every attempt of its batch, and an attempt is recorded
        # only when its batch ends: so a batch is no larger than what runs at once.
        self._delivery_batch = min(batch_size, callback_concurrency)
        self._network = asyncio.Semaphore(callback_concurrency)
        # An adapter call must end well within the item's lease, or another worker takes over.
        self._network_timeout = lease_seconds / 2
        self._items_wake = asyncio.Event()
        self._deliveries_wake = asyncio.Event()
        self.name = f"worker-{uuid.uuid4().hex[:8]}"

    def notify(self) -> None:
        """New items were accepted (call from the worker's event loop)."""
        self._items_wake.set()

    async def _db(self, function: Callable[[], T]) -> T:
        return await asyncio.to_thread(function)

    # --- items ----------------------------------------------------------------------------

    async def process_items(self) -> int:
        """Lease and finish one batch of items; returns how many were finished."""
        claim_id = uuid.uuid4().hex
        now = self._clock.now()

        def claim() -> list[store.ClaimedItem]:
            with write_transaction(self._engine) as conn:
                return store.claim_items(conn, claim_id, now, now + self._lease, self._batch)

        claimed = await self._db(claim)
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._outcome(item) for item in claimed))

        def finish() -> int:
            with write_transaction(self._engine) as conn:
                return store.finish_items(conn, claim_id, outcomes, self._clock.now())

        finished = await self._db(finish)
        if finished < len(outcomes):
            log.warning("%s: %d items lost their lease", self.name, len(outcomes) - finished)
        self._deliveries_wake.set()
        return finished

    async def _outcome(self, item: store.ClaimedItem) -> store.ItemOutcome:
        operation = Operation(item.operation)
        decision: Decision
        sim = _sim_of(item)
        if sim is None:
            decision = not_found()
        else:
            decision = decide(operation, sim.state)
            if decision.new_state is not None:
                result = await self._apply(sim, operation, decision.new_state)
                if not result.ok:
                    decision = Decision(ResultStatus.FAILURE, messages=[result.error or "failed"])
        # The documentation's sample reports the device by ICCID; unknown devices as given.
        if item.iccid:
            device = (item.iccid, IdentifierType.ICCID.value)
        else:
            device = (item.identifier, item.identifier_type)
        return store.ItemOutcome(
            item_id=item.id,
            request_id=item.request_id,
            account_id=item.account_id,
            tracking_number=item.tracking_number,
            operation=item.operation,
            sim_id=item.sim_id,
            from_state=item.state,
            new_state=decision.new_state.value if decision.new_state else None,
            result_status=decision.status.value,
            messages=decision.messages,
            delivery_id=str(uuid.uuid4()),
            payload=status_message(
                item.tracking_number, *device, decision.status.value, decision.messages
            ),
        )

    async def _apply(self, sim: SimRef, operation: Operation, target: SimState) -> NetworkResult:
        try:
            async with self._network, asyncio.timeout(self._network_timeout):
                return await self._adapter.apply(sim, operation, target)
        except TimeoutError:
            log.warning("%s: network adapter timed out on %s", self.name, sim.iccid)
            return NetworkResult(False, "Network error: the network did not answer in time.")
        except Exception as error:
            # A broken adapter must not leave the item to be retried forever: report it.
            log.exception("%s: network adapter failed on %s", self.name, sim.iccid)
            return NetworkResult(
                False, f"Network error: the adapter failed ({type(error).__name__})."
            )

    # --- deliveries -----------------------------------------------------------------------

    async def deliver_callbacks(self) -> int:
        """Lease and attempt one batch of due messages; returns how many were attempted."""
        claim_id = uuid.uuid4().hex
        now = self._clock.now()

        def claim() -> list[store.DueDelivery]:
            with write_transaction(self._engine) as conn:
                return store.claim_deliveries(
                    conn, claim_id, now, now + self._delivery_lease, self._delivery_batch
                )

        due = await self._db(claim)
        if not due:
            return 0

        async def attempt(delivery: store.DueDelivery) -> store.AttemptRecord:
            async with self._concurrency:
                return await self._sender.send(delivery)

        records = await asyncio.gather(*(attempt(d) for d in due))

        def record() -> None:
            with write_transaction(self._engine) as conn:
                store.record_attempts(conn, claim_id, records)

        await self._db(record)
        return len(records)

    # --- running --------------------------------------------------------------------------

    async def _loop(
        self, step: Callable[[], Awaitable[int]], wake: asyncio.Event, stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            try:
                done = await step()
            except Exception:
                log.exception("%s: step failed; retrying after a pause", self.name)
                done = 0
            if done:
                continue
            wake.clear()
            waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())}
            _, pending = await asyncio.wait(
                waiters, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set."""
        log.info("%s started", self.name)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._loop(self.process_items, self._items_wake, stop))
            group.create_task(self._loop(self.deliver_callbacks, self._deliveries_wake, stop))
        log.info("%s stopped", self.name)

    async def drain(self) -> None:
        """Work until nothing is ready or due now (for tests and one-shot runs)."""
        while await self.process_items() or await self.deliver_callbacks():
            pass
