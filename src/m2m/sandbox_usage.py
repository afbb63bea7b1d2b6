"""The sandbox's usage, produced while it runs (``m2m.usage_simulator`` says what each SIM
uses): a loop that counts each quarter hour of the sandbox's clock once it has ended, through
the same counting as real usage (thresholds, events, usage policies). Moving the sandbox's
clock forward is caught up quarter by quarter at the next round."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from m2m.clock import Clock
from m2m.storage import accounts as account_store
from m2m.storage import usage as usage_store
from m2m.usage_import import count_batch
from m2m.usage_simulator import SimulatedSim, batch_id, records_for, slots_to_simulate

log = logging.getLogger(__name__)

ROUND_SECONDS = 5.0  # how soon a moved clock is caught up
DEFAULT_SEED = 15


class SandboxUsage:
    def __init__(self, engine: Engine, clock: Clock, seed: int = DEFAULT_SEED) -> None:
        self._engine = engine
        self._clock = clock
        self._seed = seed
        self._last_done: int | None = None

    def catch_up(self) -> int:
        """Count every quarter hour that has ended since the last one counted; how many."""
        with self._engine.connect() as conn:
            account = account_store.find_sandbox_account(conn)
            if account is None:
                return 0
            rows = usage_store.active_sims_with_thresholds(conn, account.id)
        sims = [SimulatedSim(iccid, data or 0, bool(voice)) for iccid, data, voice in rows]
        slots = slots_to_simulate(self._last_done, self._clock.now())
        for slot in slots:
            records = records_for(sims, slot, self._seed)
            if records:
                count_batch(self._engine, self._clock, batch_id(self._seed, slot), records)
            self._last_done = slot
        return len(slots)

    async def run(self, stop: asyncio.Event) -> None:
        """Catch up every ``ROUND_SECONDS`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                await run_in_threadpool(self.catch_up)
            except Exception:
                log.exception("sandbox usage: a round failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ROUND_SECONDS)


@contextlib.asynccontextmanager
async def simulated_usage(engine: Engine, clock: Clock) -> AsyncIterator[None]:
    """The sandbox's usage, produced while the block runs (``m2m serve --sandbox``)."""
    stop = asyncio.Event()
    task = asyncio.create_task(SandboxUsage(engine, clock).run(stop))
    try:
        yield
    finally:
        stop.set()
        await task
