"""The worker run in-process, step by step: tests with a manual clock decide when it runs."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine

from m2m.clock import ManualClock
from m2m.settings import Settings
from m2m.worker_setup import worker_parts


def drain(settings: Settings, engine: Engine, clock: ManualClock) -> None:
    """Run a worker until nothing is due at ``clock``'s time (items and callback deliveries)."""

    async def run() -> None:
        async with worker_parts(settings, engine, clock) as worker:
            await worker.drain()

    asyncio.run(run())
