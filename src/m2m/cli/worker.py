"""``m2m worker``: a standalone worker process (run several against PostgreSQL)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
import uvicorn

from m2m import health, logs, metrics
from m2m.cli.common import console, load_settings, migrated_engine, shown_url, user_errors
from m2m.clock import SystemClock
from m2m.gc_tuning import settle_after_startup
from m2m.worker_setup import worker_parts


def worker(
    health_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve /healthz, /readyz and /metrics over plain HTTP on this port.",
        ),
    ] = None,
    health_host: Annotated[
        str, typer.Option(help="Address the health port listens on (loopback by default).")
    ] = "127.0.0.1",
) -> None:
    """Execute accepted lifecycle requests and deliver callbacks until stopped (Ctrl+C/SIGTERM)."""
    settings = load_settings()
    with user_errors():
        settings.check_for_production()
    engine = migrated_engine(settings, create=False)  # a worker needs the server's database
    logs.configure(settings.log_format, settings.log_level)
    clock = SystemClock()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with worker_parts(settings, engine, clock) as running:
            console.print(f"{running.name} working on {shown_url(engine)}")
            settle_after_startup()
            if health_port is None:
                await running.run(stop)
                return
            probes = _probe_server(
                health.Probe(
                    engine,
                    clock,
                    lambda: running,
                    expects_worker=True,
                    serve_metrics=settings.metrics_enabled,
                    pool_in_use=metrics.connections_in_use(engine),
                ),
                health_host,
                health_port,
            )
            serving = asyncio.create_task(probes.serve())
            try:
                await running.run(stop)
            finally:
                probes.should_exit = True
                await serving

    asyncio.run(main())


class _ProbeServer(uvicorn.Server):
    """uvicorn's server without its signal handling: the worker handles the signals (it stops,
    then this server with it), and uvicorn's would replace the worker's."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _probe_server(probe: health.Probe, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        health.probe_app(probe),
        host=host,
        port=port,
        log_config=None,  # m2m.logs has set logging up
        access_log=False,  # probes every few seconds would drown the worker's own lines
        lifespan="off",
    )
    return _ProbeServer(config)
