"""Usage reported by the network adapter (``feed_usage``), on both databases: a worker runs the
adapter's feed and counts each batch once, whole or not at all; a failing feed is started again,
and the feed stops with the worker."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from m2m import usage_feed
from m2m.clock import ManualClock
from m2m.identifiers import SimState
from m2m.lifecycle import Operation
from m2m.network import (
    BATCH,
    NetworkResult,
    ReportUsage,
    SimRef,
    Simulator,
    UsageReceipt,
    UsageSource,
)
from m2m.network_faults import FaultStore, with_faults
from m2m.settings import Settings
from m2m.storage.tables import sim_cards, usage_daily
from m2m.usage_feed import UsageReporter, run
from m2m.worker_setup import worker_parts
from tests.support.sims import add_active_sims
from tests.support.tenants import Tenant


class ReportingNetwork:
    """An adapter that reports the given batches in turn, then waits to be stopped."""

    def __init__(self, batches: Sequence[tuple[str, list[Mapping[str, object]]]]) -> None:
        self.batches = list(batches)
        self.receipts: list[UsageReceipt] = []
        self.reported = asyncio.Event()
        self.cancelled = False

    async def apply(self, sim: SimRef, operation: Operation, target: SimState) -> NetworkResult:
        return NetworkResult(True)

    async def feed_usage(self, report: ReportUsage) -> None:
        for batch_id, records in self.batches:
            self.receipts.append(await report(batch_id, records))
        self.reported.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def _iccid(engine: Engine, msisdn: str) -> str:
    with engine.connect() as conn:
        found = conn.execute(select(sim_cards.c.iccid).where(sim_cards.c.msisdn == msisdn))
        return str(found.scalar_one())


def _counted_sms(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.coalesce(func.sum(usage_daily.c.sms_out), 0))).scalar_one()
        )


def test_a_worker_counts_what_its_adapter_reports_once_per_batch(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    [msisdn] = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id)
    iccid = _iccid(engine, msisdn)
    start = clock.now() - timedelta(minutes=5)
    good = [{"iccid": iccid, "start": start, "sms_out": 2}]  # a datetime, as Python has it
    wrong = [
        {"iccid": iccid, "start": start.isoformat(), "sms_out": 1},
        {"iccid": iccid, "sms_out": 1},  # no start
    ]
    network = ReportingNetwork([("cdr-1", good), ("cdr-1", good), ("cdr-2", wrong)])
    assert isinstance(network, UsageSource)

    async def work() -> None:
        async with worker_parts(settings, engine, clock, adapter=network) as worker:
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(stop))
            await asyncio.wait_for(network.reported.wait(), 30)
            stop.set()
            await asyncio.wait_for(running, 30)

    asyncio.run(work())
    first, again, refused = network.receipts
    assert (first.counted, first.already_counted, first.problems) == (1, 0, ())
    assert (again.counted, again.already_counted) == (0, 1)
    assert refused.counted == 0
    assert [index for index, _ in refused.problems] == [1]
    assert "start" in refused.problems[0][1]
    assert _counted_sms(engine) == 2  # once, and nothing of the refused batch
    assert network.cancelled  # the feed stopped with the worker


class FailingOnce:
    def __init__(self, records: list[Mapping[str, object]]) -> None:
        self.records = records
        self.starts = 0
        self.done = asyncio.Event()

    async def feed_usage(self, report: ReportUsage) -> None:
        self.starts += 1
        if self.starts == 1:
            raise ConnectionError("the mediation's stream went away")
        await report("after-restart", self.records)
        self.done.set()


def test_a_feed_that_fails_is_started_again(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    [msisdn] = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id)
    start = (clock.now() - timedelta(minutes=5)).isoformat()
    feed = FailingOnce([{"iccid": _iccid(engine, msisdn), "start": start, "sms_out": 3}])

    async def work() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(run(feed, engine, clock, stop, restart_seconds=0.01))
        await asyncio.wait_for(feed.done.wait(), 30)
        await asyncio.wait_for(running, 30)  # it returned: nothing more to report

    asyncio.run(work())
    assert feed.starts == 2
    assert _counted_sms(engine) == 3


def test_a_batch_id_that_cannot_be_one_is_refused_in_the_receipt(
    engine: Engine, clock: ManualClock
) -> None:
    """Not raised: a feed that raised would be started again and report the same batch again."""
    report = UsageReporter(engine, clock)
    for bad in ("", "x" * 101, "tab\there"):
        receipt = asyncio.run(report(bad, [{"iccid": "89320180000000000006", "start": "x"}]))
        assert receipt.counted == 0
        [(where, problem)] = receipt.problems
        assert where == BATCH
        assert "printable ASCII" in problem


class Stubborn:
    """A feed that swallows its first cancellation and goes on (until cancelled again: the
    event loop's own clean-up, at the test's end)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def feed_usage(self, report: ReportUsage) -> None:
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(3600)


def test_a_feed_that_will_not_stop_does_not_hold_the_worker(
    engine: Engine, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage_feed, "STOP_SECONDS", 0.05)
    feed = Stubborn()

    async def work() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(run(feed, engine, clock, stop))
        await asyncio.wait_for(feed.started.wait(), 30)
        stop.set()
        await asyncio.wait_for(running, 30)  # returns: the feed is left behind, logged

    asyncio.run(work())


def test_the_sandbox_s_faults_keep_an_adapter_s_usage_feed(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """``m2m serve --sandbox`` wraps the adapter to meet its faults: a custom adapter's feed
    still runs through the wrapper (it was lost there), and the simulator stays without one."""
    [msisdn] = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id)
    start = (clock.now() - timedelta(minutes=5)).isoformat()
    network = ReportingNetwork(
        [("via-faults", [{"iccid": _iccid(engine, msisdn), "start": start, "sms_out": 4}])]
    )
    wrapped = with_faults(network, FaultStore())
    assert isinstance(wrapped, UsageSource)
    assert not isinstance(with_faults(Simulator(), FaultStore()), UsageSource)

    async def work() -> None:
        stop = asyncio.Event()
        assert isinstance(wrapped, UsageSource)
        running = asyncio.create_task(run(wrapped, engine, clock, stop))
        await asyncio.wait_for(network.reported.wait(), 30)
        stop.set()
        await asyncio.wait_for(running, 30)

    asyncio.run(work())
    assert _counted_sms(engine) == 4
