"""The requests answered, tallied in plain Python and written to the Prometheus metrics in
batches (``flush``): at most a second after the first request of a batch, at every scrape, and
when the app stops.

Why not count each request straight into the metrics: in multi-process mode every value is a
locked write to a memory-mapped file, and a request costs three of them (its count, its latency's
bucket, the latencies' sum) — a measurable share of a cached ``GET /simcards`` (docs/benchmarks.md).
Tallied, a request is a few dictionary updates; a flush writes each label set's totals once
(``Counter.inc(n)``, and the histogram's bucket and sum values incremented by their totals).

What it costs: a process killed with SIGKILL loses the requests of its last second, which had not
been written yet (a process that stops normally flushes first). Counters stay monotonic.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from m2m import metrics

FLUSH_SECONDS = 1.0  # how stale a scrape of another process may be, at most

# Prometheus's rule: an observation goes in the first bucket whose bound is >= it; the last,
# +Inf, takes the rest.
BOUNDS = (*metrics.LATENCY_BUCKETS, float("inf"))


@dataclass
class _Latencies:
    total: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BOUNDS))


class RequestTally:
    """Thread-safe: the apps of one process may run on different event loops (tests do)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str, int], int] = {}
        self._latencies: dict[tuple[str, str], _Latencies] = {}
        self._children: dict[Any, Any] = {}  # label objects, looked up once

    def add(self, route: str, method: str, status: int, duration: float) -> bool:
        """Count one answer; True when it is the first since the last flush (the caller
        schedules the next one)."""
        with self._lock:
            first = not self._answers
            key = (route, method, status)
            self._answers[key] = self._answers.get(key, 0) + 1
            latencies = self._latencies.get((route, method))
            if latencies is None:
                latencies = self._latencies[(route, method)] = _Latencies()
            latencies.total += duration
            latencies.buckets[bisect_left(BOUNDS, duration)] += 1
        return first

    def flush(self) -> None:
        """Write what was tallied since the last flush to the metrics."""
        with self._lock:
            answers, self._answers = self._answers, {}
            latencies, self._latencies = self._latencies, {}
            for (route, method, status), count in answers.items():
                self._child(metrics.HTTP_REQUESTS, route, method, str(status)).inc(count)
                if status == 401:
                    self._child(metrics.AUTH_FAILURES, route).inc(count)
                elif status == 429:
                    self._child(metrics.THROTTLED, route).inc(count)
            for (route, method), seen in latencies.items():
                _observe_all(self._child(metrics.HTTP_DURATION, route, method), seen)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child


def _observe_all(histogram: Any, seen: _Latencies) -> None:
    """``observe`` for every latency at once. prometheus-client has no batch observation; its
    histogram keeps a value per bucket (``_buckets``, non-cumulative, in ``_upper_bounds``'
    order) and their sum (``_sum``), which ``observe`` increments one at a time. A change in
    the client breaks tests/test_metrics.py's scrape of a known workload, not the counts."""
    if tuple(histogram._upper_bounds) != BOUNDS:
        raise RuntimeError("the latency histogram's buckets are not the tally's")
    histogram._sum.inc(seen.total)
    for index, count in enumerate(seen.buckets):
        if count:
            histogram._buckets[index].inc(count)


REQUESTS = RequestTally()  # the process's, shared by its apps and read by its scrapes
