"""The worker: executes accepted lifecycle items and delivers their callbacks.

Three loops run side by side in one asyncio task group:

- **items**: lease a batch of ready items (first in line for their SIM, shared fairly across
  accounts and their requests), decide each (``lifecycle.decide``), ask the network adapter for
  the changes, then record outcomes, state changes, history rows and callback messages in one
  transaction. A worker that dies leaves its leases to expire; another worker takes the items
  over. Recording is guarded by the lease, so a state change is applied exactly once.
- **deliveries**: turn new events into their subscriptions' messages (``callbacks.fanout``),
  lease due callback messages (``callbacks.dispatch``: fair shares per account,
  each account within its in-flight allowance, circuit breakers), POST them concurrently, record
  each attempt, the next retry (``callbacks.retry.next_attempt_at``) and the breakers' moves.
- **usage reactivations**: once a minute (and when the sandbox's clock moves), take up the SIMs
  the usage policy deactivated whose period has ended and reactivate them through a request
  (``usage_policy.reactivate_due``); one indexed query when nothing is due.

Database calls are synchronous (see docs/design-notes.md) and run in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import Engine

from m2m import logs, metrics, usage_feed, usage_policy
from m2m.callbacks import dispatch, fanout
from m2m.callbacks.message import status_message
from m2m.callbacks.sender import CallbackSender
from m2m.clock import Clock
from m2m.identifiers import IdentifierType, SimState
from m2m.lifecycle import Decision, Operation, ResultStatus, decide, not_found
from m2m.network import TIMEOUT_MESSAGE, NetworkAdapter, NetworkResult, SimRef, UsageSource
from m2m.storage import heartbeats, item_queue, notify, outbox
from m2m.storage import usage_deactivations as deactivation_store
from m2m.storage.engine import write_transaction

log = logging.getLogger("m2m.worker")
RECORD_EVERY = 0.05  # seconds: finished attempts wait at most about this long to be recorded
# Seconds between looks for SIMs due back from the usage policy: periods end at midnights, and a
# minute late is on time for a day's worth of SMS; a look when nothing is due is one index probe.
REACTIVATION_EVERY = 60.0
T = TypeVar("T")


def attempt_outcome(record: outbox.AttemptRecord) -> str:
    """The metrics' word for how an attempt went (a bounded set)."""
    if record.delivered:
        return "delivered"
    if record.status_code is not None:
        return "rejected"
    if record.url is None or record.error == "no callback URL configured":
        return "no_url"
    if record.error and record.error.startswith("refused"):
        return "refused"
    return "unreachable"


def _sim_of(item: item_queue.ClaimedItem) -> SimRef | None:
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
        callback_concurrency: int = 96,
        delivery_policy: dispatch.DeliveryPolicy,
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
        # Messages are claimed only when they can be sent at once (no queueing behind the
        # concurrency limit), so each attempt starts right after its claim and ends within the
        # timeout: its lease cannot expire while it is in flight.
        self._send_limit = callback_concurrency
        self._delivery_policy = delivery_policy
        self._in_flight: Counter[int] = Counter()  # messages claimed and not yet sent, per account
        # Where the next claims' rotations start (the account served first last time).
        self._items_after: int | None = None
        self._deliveries_after: int | None = None
        self._untroubled: frozenset[int] = frozenset()  # as the last delivery claim saw them
        # A batch's adapter calls run all at once, each bounded by half the lease, so the batch
        # is recorded before its lease can expire.
        self._item_batch = batch_size
        self._network_timeout = lease_seconds / 2
        self._items_wake = asyncio.Event()
        self._deliveries_wake = asyncio.Event()
        self._reactivations_wake = asyncio.Event()
        self.name = f"worker-{uuid.uuid4().hex[:8]}"
        self.started_at = clock.now()
        # When a loop last went round (time.monotonic): the readiness probe's "is it alive".
        self.alive_at = time.monotonic()
        self._items_held = 0  # items of the batch being executed
        self.running = False  # inside run()

    def is_alive(self) -> bool:
        """Running, and its loops went round recently: a step may take up to half a lease
        (the network's timeout) and the database's time besides, never a whole lease."""
        age = time.monotonic() - self.alive_at
        return self.running and age < self._lease.total_seconds()

    def notify(self) -> None:
        """New items were accepted (call from the worker's event loop)."""
        self._items_wake.set()

    def wake(self) -> None:
        """Look for ready items and due messages now (the sandbox's clock moved, say); call
        from the worker's event loop."""
        self._items_wake.set()
        self._deliveries_wake.set()
        self._reactivations_wake.set()  # a period may have ended

    async def _db(self, function: Callable[[], T]) -> T:
        return await asyncio.to_thread(function)

    # --- items ----------------------------------------------------------------------------

    async def process_items(self) -> int:
        """Lease and finish one batch of items; returns how many were finished."""
        claim_id = uuid.uuid4().hex
        now = self._clock.now()

        def claim() -> list[item_queue.ClaimedItem]:
            with write_transaction(self._engine) as conn:
                return item_queue.claim_items(
                    conn,
                    claim_id,
                    now,
                    now + self._lease,
                    self._item_batch,
                    first_after=self._items_after,
                )

        claimed = await self._db(claim)
        if not claimed:
            return 0
        self._items_after = claimed[0].account_id
        self._items_held = len(claimed)
        try:
            outcomes = await asyncio.gather(*(self._outcome(item) for item in claimed))

            def finish() -> int:
                with write_transaction(self._engine) as conn:
                    return item_queue.finish_items(conn, claim_id, outcomes, self._clock.now())

            finished = await self._db(finish)
        finally:
            self._items_held = 0
        if finished < len(outcomes):
            log.warning("%s: %d items lost their lease", self.name, len(outcomes) - finished)
        else:
            # Counted when the whole batch was recorded (a lost lease's items are counted by
            # the worker that takes them over).
            for (operation, result), count in Counter(
                (o.operation, o.result_status) for o in outcomes
            ).items():
                metrics.ITEMS_EXECUTED.labels(operation, result).inc(count)
        self._deliveries_wake.set()
        return finished

    async def _outcome(self, item: item_queue.ClaimedItem) -> item_queue.ItemOutcome:
        # Each item runs in a task of its own (gather): its log lines name its request's call.
        logs.begin(item.http_request_id, item.account_id)
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
        return item_queue.ItemOutcome(
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
            async with asyncio.timeout(self._network_timeout):
                return await self._adapter.apply(sim, operation, target)
        except TimeoutError:
            log.warning("%s: network adapter timed out on %s", self.name, sim.iccid)
            return NetworkResult(False, TIMEOUT_MESSAGE)
        except Exception as error:
            # A broken adapter must not leave the item to be retried forever: report it.
            log.exception("%s: network adapter failed on %s", self.name, sim.iccid)
            return NetworkResult(
                False, f"Network error: the adapter failed ({type(error).__name__})."
            )

    # --- usage reactivations --------------------------------------------------------------

    async def reactivate_usage(self) -> int:
        """One step of the usage policy's reactivations at the clock's time (see the module);
        returns how many SIMs it took up (each reactivated, or left as it was found)."""

        def step() -> tuple[int, list[str]]:
            with self._engine.connect() as conn:
                if not deactivation_store.any_due(conn, self._clock.now()):
                    return 0, []
            with write_transaction(self._engine) as conn:
                return usage_policy.reactivate_due(conn, self._clock)

        taken, tracking_numbers = await self._db(step)
        if tracking_numbers:
            log.info("%s: usage reactivations %s", self.name, ", ".join(tracking_numbers))
            self._items_wake.set()
        return taken

    async def _reactivations_loop(self, stop: asyncio.Event) -> None:
        # Not counted as the worker's liveness (``alive_at``): the items and deliveries loops
        # say whether it is alive; a loop that goes round once a minute would hide them stalling.
        while not stop.is_set():
            try:
                while await self.reactivate_usage() and not stop.is_set():
                    pass
            except Exception:
                log.exception("%s: usage reactivation step failed; trying again", self.name)
            await self._idle(self._reactivations_wake, stop, REACTIVATION_EVERY)

    # --- deliveries -----------------------------------------------------------------------

    async def _record_and_claim(
        self, finished: list[tuple[str, outbox.AttemptRecord]], limit: int
    ) -> tuple[list[tuple[str, outbox.DueDelivery]], bool]:
        """Record finished attempts and lease up to ``limit`` due messages, in one transaction:
        a commit (an fsync on SQLite) per round instead of one for each half. Also returns
        whether more messages were due than were leased."""
        claim_id = uuid.uuid4().hex
        policy = self._delivery_policy

        fanned_out = fanout.FanOut(0, False)

        def step() -> dispatch.DeliveryClaim | None:
            nonlocal fanned_out
            now = self._clock.now()
            with write_transaction(self._engine) as conn:
                dispatch.record(conn, finished, now, policy, self._untroubled)
                if not limit:
                    return None
                # New events become their subscriptions' messages, claimable at once.
                fanned_out = fanout.fan_out(conn, now)
                return dispatch.claim(
                    conn,
                    claim_id,
                    now,
                    now + self._delivery_lease,
                    limit,
                    self._in_flight,
                    policy,
                    self._deliveries_after,
                )

        if not finished and not limit:
            return [], False
        claimed = await self._db(step)
        if claimed is None:
            return [], False
        self._deliveries_after = claimed.first_account
        self._untroubled = claimed.untroubled
        more_due = claimed.more_due or fanned_out.more
        return [(claim_id, delivery) for delivery in claimed.deliveries], more_due

    def _send(
        self, claim_id: str, delivery: outbox.DueDelivery
    ) -> Awaitable[tuple[str, outbox.AttemptRecord]]:
        """The attempt, counted in its account's messages in flight from now (the claim) until
        it is over, so that the next claim sees it whether it has started or not."""
        self._in_flight[delivery.account_id] += 1

        async def attempt() -> tuple[str, outbox.AttemptRecord]:
            logs.begin(delivery.http_request_id, delivery.account_id)  # this task's log lines
            try:
                record = await self._sender.send(delivery)
                metrics.CALLBACK_ATTEMPTS.labels(attempt_outcome(record)).inc()
                if record.latency_ms is not None:
                    metrics.CALLBACK_LATENCY.observe(record.latency_ms / 1000)
                log.debug(
                    "callback %s attempt %d: %s",
                    delivery.id,
                    delivery.attempts + 1,
                    record.error or record.status_code,
                )
                return claim_id, record
            finally:
                self._in_flight[delivery.account_id] -= 1
                if not self._in_flight[delivery.account_id]:
                    del self._in_flight[delivery.account_id]

        return attempt()

    async def deliver_callbacks(self) -> int:
        """Lease, attempt and record one round of due messages; returns how many."""
        due, _ = await self._record_and_claim([], self._send_limit)
        if not due:
            return 0
        records = await asyncio.gather(*(self._send(claim_id, d) for claim_id, d in due))
        await self._record_and_claim(list(records), 0)
        return len(records)

    async def _deliveries_pipeline(self, stop: asyncio.Event) -> None:
        """Keep up to the concurrency limit of messages in flight, claiming as slots free up;
        each round records what finished since the last one and claims for the free slots."""
        results: asyncio.Queue[tuple[str, outbox.AttemptRecord]] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()
        finished: list[tuple[str, outbox.AttemptRecord]] = []
        # Claim again once this many attempts have finished (when more messages are due):
        # claims of a good size, not one message at a time.
        refill = max(1, self._send_limit // 4)

        async def attempt(sending: Awaitable[tuple[str, outbox.AttemptRecord]]) -> None:
            await results.put(await sending)

        backlog = False  # the last claim left due messages behind
        while not stop.is_set() or tasks or finished or not results.empty():
            self.alive_at = time.monotonic()
            try:
                free = self._send_limit - len(tasks)
                # Claim when a good share of the slots is free, not one message at a time.
                wanted = free if not stop.is_set() and (not tasks or free >= refill) else 0
                claimed, more_due = await self._record_and_claim(finished, wanted)
                finished = []
                if wanted:
                    backlog = more_due
                for claim_id, delivery in claimed:
                    task = asyncio.create_task(attempt(self._send(claim_id, delivery)))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if not tasks and results.empty():
                    await self._idle(self._deliveries_wake, stop)
                    continue
                # Gather what finishes within RECORD_EVERY (far below the lease) for the next
                # round, or less when enough slots freed up and more messages are waiting.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECORD_EVERY):
                        while len(finished) < self._send_limit:
                            finished.append(await results.get())
                            while not results.empty():  # and all that finished meanwhile
                                finished.append(results.get_nowait())
                            if not tasks:
                                break
                            if backlog and len(finished) >= refill:
                                break  # refill the slots these freed
            except Exception:
                log.exception("%s: delivery step failed; retrying after a pause", self.name)
                await asyncio.sleep(self._poll)

    # --- running --------------------------------------------------------------------------

    async def _loop(
        self, step: Callable[[], Awaitable[int]], wake: asyncio.Event, stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            self.alive_at = time.monotonic()
            try:
                done = await step()
            except Exception:
                log.exception("%s: step failed; retrying after a pause", self.name)
                done = 0
            if not done:
                await self._idle(wake, stop)

    async def _idle(
        self, wake: asyncio.Event, stop: asyncio.Event, seconds: float | None = None
    ) -> None:
        """Wait for a wake-up, a stop, or the polling interval (work of other processes)."""
        wake.clear()
        waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())}
        _, pending = await asyncio.wait(
            waiters,
            timeout=self._poll if seconds is None else seconds,
            return_when=asyncio.FIRST_COMPLETED,
        )
        for waiter in pending:
            waiter.cancel()

    def heartbeat(self) -> heartbeats.Heartbeat:
        """What this worker's heartbeat row says now."""
        return heartbeats.Heartbeat(
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.started_at,
            seen_at=self._clock.now(),
            items_held=self._items_held,
            messages_held=sum(self._in_flight.values()),
        )

    async def _beat(self, stop: asyncio.Event) -> None:
        """Write the heartbeat every few seconds; remove it when stopping."""
        while not stop.is_set():
            try:
                beat = self.heartbeat()

                def write(beat: heartbeats.Heartbeat = beat) -> None:
                    with write_transaction(self._engine) as conn:
                        heartbeats.beat(conn, beat)

                await self._db(write)
            except Exception:
                log.exception("%s: heartbeat failed; trying again", self.name)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(heartbeats.HEARTBEAT_SECONDS):
                    await stop.wait()

        def forget() -> None:
            with write_transaction(self._engine) as conn:
                heartbeats.forget(conn, self.name)

        try:
            await self._db(forget)
        except Exception:
            log.exception("%s: could not remove its heartbeat", self.name)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set."""
        log.info("%s started", self.name)
        self.running = True
        self.alive_at = time.monotonic()
        try:
            await self._run(stop)
        finally:
            self.running = False
        log.info("%s stopped", self.name)

    async def _run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._beat(stop))
            group.create_task(self._loop(self.process_items, self._items_wake, stop))
            group.create_task(self._deliveries_pipeline(stop))
            group.create_task(self._reactivations_loop(stop))
            wake = {
                notify.ITEMS: self._items_wake.set,
                notify.DELIVERIES: self._deliveries_wake.set,
            }
            group.create_task(notify.listen(self._engine, wake, stop))
            if isinstance(self._adapter, UsageSource):
                group.create_task(usage_feed.run(self._adapter, self._engine, self._clock, stop))

    async def drain(self) -> None:
        """Work until nothing is ready or due now (for tests and one-shot runs)."""
        while (
            await self.process_items()
            or await self.deliver_callbacks()
            or await self.reactivate_usage()
        ):
            pass
