"""Slowing down credential guessing: a sliding window of failures per key.

Keys are strings such as ``client:<client_id>`` or ``addr:<ip>``. Once a key has ``max_failures``
failures inside the window, it is refused until the oldest of them leaves the window. Successes do
not clear the count, so an attacker cannot reset it by interleaving a valid request.

The state is per process: with N API processes an attacker gets N times the budget, which still
leaves 256-bit secrets unguessable; the limit is there to stop floods, not to make secrets strong.
"""

from __future__ import annotations

import math
import threading
from collections import deque

from m2m.clock import Clock

_PRUNE_EVERY = 10_000


class FailureLimiter:
    def __init__(self, max_failures: int, window_seconds: float, clock: Clock) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._records = 0

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _live(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, *keys: str) -> int | None:
        """Seconds to wait if any key is over its budget, else None."""
        now = self._now()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._live(key, now)
                if times is not None and len(times) >= self.max_failures:
                    wait = max(wait, times[0] + self.window_seconds - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def record_failure(self, *keys: str) -> None:
        now = self._now()
        with self._lock:
            for key in keys:
                times = self._failures.setdefault(key, deque(maxlen=self.max_failures))
                times.append(now)
            self._records += 1
            if self._records % _PRUNE_EVERY == 0:
                for stale in list(self._failures):
                    self._live(stale, now)
