"""What load balancers, watchdogs and Prometheus ask a process: ``/healthz`` (it answers),
``/readyz`` (its database is reachable and migrated to this code's revision, and its worker, if
it runs one, is going round) and ``/metrics``.

The API serves them beside its routes (``api.app``); ``m2m worker --health-port`` serves them
alone (``probe_app``). They are unauthenticated and cheap: ``/healthz`` touches nothing,
``/readyz`` reads one row, and ``/metrics`` reads the backlog with a few counts over partial
indexes of open rows (``storage.backlog``) — the gauges of what is waiting are read from the
database at scrape time rather than kept in memory, because every process and worker shares
the queues and a process's own view would be partial and lost with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from m2m import metrics, request_tally
from m2m.clock import Clock
from m2m.storage import backlog as backlog_store
from m2m.storage import heartbeats as heartbeat_store
from m2m.storage.migrate import current_revision, head_revision
from m2m.worker import Worker

log = logging.getLogger("m2m.health")

HEALTHZ = "/healthz"
READYZ = "/readyz"
METRICS = "/metrics"
PROBE_PATHS = frozenset({HEALTHZ, READYZ, METRICS})
# A database that does not answer within this is "not ready" (PostgreSQL's own connect timeout
# is longer: a probe must answer before the prober gives up).
DATABASE_CHECK_SECONDS = 2.0
_NO_CACHE = {"Cache-Control": "no-store"}


@dataclass(frozen=True, slots=True)
class Probe:
    """What the endpoints look at in one process."""

    engine: Engine
    clock: Clock
    worker: Callable[[], Worker | None]  # the process's worker, once it runs
    expects_worker: bool
    serve_metrics: bool = True
    # The database connections this process has checked out now (``metrics.connections_in_use``).
    pool_in_use: Callable[[], int] = lambda: 0


async def readiness(probe: Probe) -> tuple[bool, dict[str, str]]:
    """Whether the process can serve, and what each check found."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(DATABASE_CHECK_SECONDS):
            revision = await run_in_threadpool(current_revision, probe.engine)
    except TimeoutError:
        checks["database"] = f"no answer within {DATABASE_CHECK_SECONDS:g} s"
    except Exception as error:
        checks["database"] = f"unreachable ({type(error).__name__})"
    else:
        checks["database"] = "ok"
        wanted = head_revision()
        checks["schema"] = (
            "ok" if revision == wanted else f"at {revision}, this code needs {wanted}: migrate"
        )
    if probe.expects_worker:
        worker = probe.worker()
        checks["worker"] = "ok" if worker is not None and worker.is_alive() else "not running"
    return all(value == "ok" for value in checks.values()), checks


class BacklogCollector(Collector):
    """The gauges read from the database at scrape time (see the module's docstring)."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("m2m_database_up", "1 when the scrape could read the database.")
        try:
            with self._engine.connect() as conn:
                found = backlog_store.backlog(conn)
                beats = heartbeat_store.heartbeats(conn)
        except Exception:
            log.warning("metrics: could not read the backlog", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now = self._clock.now()
        items = GaugeMetricFamily(
            "m2m_items_waiting",
            "Lifecycle items not yet done: pending (not started) or claimed (being executed).",
            labels=("state",),
        )
        items.add_metric(["pending"], found.items_pending)
        items.add_metric(["claimed"], found.items_claimed)
        yield items
        yield _age(
            "m2m_oldest_open_request_age_seconds",
            "Age of the oldest lifecycle request not yet finished (0: none).",
            now - found.oldest_open_request_at if found.oldest_open_request_at else None,
        )
        yield GaugeMetricFamily(
            "m2m_callbacks_waiting",
            "Callback messages not yet delivered nor given up.",
            value=found.messages_pending,
        )
        yield _age(
            "m2m_oldest_callback_waiting_age_seconds",
            "Age of the oldest callback message waiting (0: none).",
            now - found.oldest_message_at if found.oldest_message_at else None,
        )
        yield GaugeMetricFamily(
            "m2m_callback_breakers_open",
            "Callback receivers paused by their circuit breaker.",
            value=found.breakers_open,
        )
        yield GaugeMetricFamily(
            "m2m_workers_alive",
            "Workers whose heartbeat is recent, all hosts together.",
            value=sum(1 for beat in beats if now - beat.seen_at <= heartbeat_store.ALIVE_WITHIN),
        )


def _age(name: str, documentation: str, age: timedelta | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        name, documentation, value=max(0.0, age.total_seconds()) if age else 0.0
    )


def routes(probe: Probe) -> list[Route]:
    """The three endpoints, for an app of their own or beside an API's routes."""
    collector = BacklogCollector(probe.engine, probe.clock)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=_NO_CACHE)

    async def readyz(_request: Request) -> Response:
        ready, checks = await readiness(probe)
        body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503, headers=_NO_CACHE)

    async def metrics_page(_request: Request) -> Response:
        metrics.DB_CONNECTIONS_IN_USE.set(probe.pool_in_use())
        request_tally.REQUESTS.flush()  # this process's requests up to now
        body, content_type = await run_in_threadpool(metrics.exposition, [collector])
        return Response(body, media_type=content_type, headers=_NO_CACHE)

    found = [
        Route(HEALTHZ, healthz, methods=["GET"], include_in_schema=False),
        Route(READYZ, readyz, methods=["GET"], include_in_schema=False),
    ]
    if probe.serve_metrics:
        found.append(Route(METRICS, metrics_page, methods=["GET"], include_in_schema=False))
    return found


def probe_app(probe: Probe) -> Starlette:
    """The endpoints as an app of their own (``m2m worker --health-port``)."""
    return Starlette(routes=routes(probe))
