"""When to try a callback again: exponential backoff with jitter over about a day. Pure.

The schedule is configuration (``M2M_CALLBACK_RETRY_SCHEDULE``; its default, 13 attempts over
about 23.8 hours, is ``settings.DEFAULT_RETRY_SCHEDULE``). Each delay is jittered by ±20% so that
a receiver coming back up is not hit by every queued message at the same instant.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

JITTER = 0.2


def next_attempt_at(
    attempts_made: int,
    now: datetime,
    schedule: Sequence[float],
    rng: random.Random | None = None,
) -> datetime | None:
    """When to try again after ``attempts_made`` failed attempts, or None to give up."""
    if attempts_made < 1 or attempts_made > len(schedule):
        return None
    delay = schedule[attempts_made - 1]
    factor = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return now + timedelta(seconds=delay * factor)
