"""When to try a callback again: exponential backoff with jitter over about a day. Pure.

Default schedule (seconds before each retry): 10, 30, 60, 120, 300, 600, 1800, 3600, 7200,
14400, 28800, 28800 — 13 attempts in all over about 23.8 hours; each delay is jittered by ±20% so
that a receiver coming back up is not hit by every queued message at the same instant.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    7200,
    14400,
    28800,
    28800,
)
JITTER = 0.2


def next_attempt_at(
    attempts_made: int,
    now: datetime,
    schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
    rng: random.Random | None = None,
) -> datetime | None:
    """When to try again after ``attempts_made`` failed attempts, or None to give up."""
    if attempts_made < 1 or attempts_made > len(schedule):
        return None
    delay = schedule[attempts_made - 1]
    factor = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return now + timedelta(seconds=delay * factor)
