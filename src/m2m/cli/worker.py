"""``m2m worker``: a standalone worker process (run several against PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import signal

from m2m.cli.common import console, load_settings, migrated_engine, shown_url, user_errors
from m2m.clock import SystemClock
from m2m.worker_setup import worker_parts


def worker() -> None:
    """Execute accepted lifecycle requests and deliver callbacks until stopped (Ctrl+C/SIGTERM)."""
    settings = load_settings()
    with user_errors():
        settings.check_for_production()
    engine = migrated_engine(settings, create=False)  # a worker needs the server's database
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with worker_parts(settings, engine, SystemClock()) as running:
            console.print(f"{running.name} working on {shown_url(engine)}")
            await running.run(stop)

    asyncio.run(main())
