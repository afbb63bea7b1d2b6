"""The platform's Prometheus metrics (``prometheus-client``), and their exposition.

What happens (requests answered, items executed, callback attempts) is counted where it happens,
in the process it happens in. What *is* (queue depths, the oldest waiting item, breakers open,
workers alive) is read from the database when a scrape asks (``m2m.health``): the queues are
shared by every process and worker, so one query answers for all of them, it cannot drift from
the truth after a crash, and it costs nothing between scrapes.

**Several processes.** ``m2m serve --processes N`` runs N processes behind one port; a scrape
lands on any one of them. With ``PROMETHEUS_MULTIPROC_DIR`` set (``serve`` sets it, to a fresh
directory, before the processes start) every process writes its values to files there and any
process's ``/metrics`` adds them all up. A dead process's counters stay counted (a counter
must never go back); its live gauges are dropped (``forget_dead_processes``).

Labels are bounded: a route *template* (``/m2m/1.0.0/simcards/{iccid}``), a method, a status,
an operation, an outcome — never a path, a SIM or an account. One account's backlog is asked of
the admin CLI (``m2m admin status``), not of the metrics.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import Engine

if TYPE_CHECKING:  # the admin CLI imports this module; it must not load FastAPI
    from fastapi.telemetry import TelemetryConfig

# FastAPI's own OpenTelemetry instrumentation, off in the API and the console apps: these
# metrics and m2m.observe's access log are what the server reports through. With it on, FastAPI
# asked OpenTelemetry on every request whether a tracer, meter or logger provider had been set,
# even with none: a third of a GET /simcards' CPU in-process (156 -> 105 us per request,
# scripts/bench_asgi.py).
NO_NATIVE_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """Where the processes write their values, when they share them."""
    value = os.environ.get(MULTIPROC_DIR) or os.environ.get(MULTIPROC_DIR.lower())
    return Path(value) if value else None


# The client writes a metric's file as the metric is made (below): an operator's directory
# must exist by then.
if (_shared := multiprocess_dir()) is not None:
    _shared.mkdir(parents=True, exist_ok=True)

# Fewer buckets than the client's default (15): each one is a value to write per observation
# (a file write in multi-process mode) and a series to store. These cover a cached lookup
# (~1 ms) to a timed-out call.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

HTTP_REQUESTS = Counter(
    "m2m_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ("route", "method", "status"),
)
HTTP_DURATION = Histogram(
    "m2m_http_request_duration_seconds",
    "Time from the request's arrival to its answer's last byte, by route template and method.",
    ("route", "method"),
    buckets=LATENCY_BUCKETS,
)
AUTH_FAILURES = Counter(
    "m2m_auth_failures",
    "Answers 401: a missing or wrong token, API key or client credential, by route template.",
    ("route",),
)
THROTTLED = Counter(
    "m2m_throttled",
    "Answers 429: too many failed authentications, or over an account's rate limit.",
    ("route",),
)
ITEMS_ACCEPTED = Counter(
    "m2m_items_accepted",
    "Devices accepted in lifecycle requests, by operation.",
    ("operation",),
)
ITEMS_EXECUTED = Counter(
    "m2m_items_executed",
    "Lifecycle items executed by workers, by operation and result (Success, Failure).",
    ("operation", "result"),
)
CALLBACK_ATTEMPTS = Counter(
    "m2m_callback_attempts",
    "Callback delivery attempts, by outcome: delivered, rejected (a non-2xx answer), "
    "unreachable (timeout, connection failure), refused (a forbidden or invalid URL), no_url.",
    ("outcome",),
)
CALLBACK_LATENCY = Histogram(
    "m2m_callback_attempt_duration_seconds",
    "Time a receiver took to answer a callback attempt (attempts that got an answer).",
    buckets=LATENCY_BUCKETS,
)
DB_CONNECTIONS_IN_USE = Gauge(
    "m2m_db_connections_in_use",
    "Database connections checked out of the pools, all processes together.",
    multiprocess_mode="livesum",
)


def connections_in_use(*engines: Engine) -> Callable[[], int]:
    """What ``DB_CONNECTIONS_IN_USE`` is set from: the connections checked out of these
    engines' pools now. Sampled (``m2m.observe`` at most once a second, and at each scrape)
    rather than counted at every checkout: a gauge write and an event listener on each
    checkout and checkin were a measurable share of the hot path's cost."""
    pools = [engine.pool for engine in dict.fromkeys(engines)]

    def count() -> int:
        return sum(getattr(pool, "checkedout", lambda: 0)() for pool in pools)

    return count


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def forget_dead_processes(directory: Path) -> list[int]:
    """Drop the live gauges of processes that are gone (a restarted ``--processes`` child);
    their counters and histograms stay, added up with the living ones'. Returns their pids."""
    pids = set()
    for path in directory.glob("gauge_live*.db"):
        digits = path.stem.rsplit("_", 1)[-1]
        if digits.isdigit():
            pids.add(int(digits))
    dead = sorted(pid for pid in pids if not _alive(pid))
    for pid in dead:
        mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    return dead


def forget_other_processes(directory: Path) -> None:
    """Empty ``directory`` of a previous run's values (this process's own files stay: it has
    them open)."""
    for stale in directory.glob("*.db"):
        if not stale.stem.endswith(f"_{os.getpid()}"):
            stale.unlink()


def exposition(collectors: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The text of a scrape, and its content type: this process's metrics (or every process's,
    in multi-process mode) and ``collectors``' (read at this moment)."""
    directory = multiprocess_dir()
    registry = CollectorRegistry(auto_describe=False)
    if directory is not None:
        forget_dead_processes(directory)
        _SharedFiles(registry, str(directory))  # type: ignore[no-untyped-call]
    else:
        registry.register(_Everything())
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _SharedFiles(MultiProcessCollector):
    """The processes' files, but not one a starting process has just created: the client opens
    a new file, then sizes it, and a scrape that read it in between failed on its empty header
    (a 500 while ``--processes`` replaced a process). Such a file holds no value yet."""

    def collect(self):  # type: ignore[no-untyped-def]
        files = []
        for path in Path(self._path).glob("*.db"):
            try:
                if path.stat().st_size >= _HEADER_BYTES:
                    files.append(str(path))
            except FileNotFoundError:  # a dead process's live gauges, dropped meanwhile
                continue
        return self.merge(files, accumulate=True)  # type: ignore[no-untyped-call]


_HEADER_BYTES = 8  # a values file's header: how much of it is used, then padding


class _Everything(Collector):
    """This process's default registry (the metrics above, and the client's process and
    platform collectors), inside a scrape's own registry."""

    def collect(self):  # type: ignore[no-untyped-def]
        yield from REGISTRY.collect()
