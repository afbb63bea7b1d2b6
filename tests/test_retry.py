from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from m2m.callbacks.retry import JITTER, next_attempt_at
from m2m.settings import DEFAULT_RETRY_SCHEDULE

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_schedule_spans_about_a_day() -> None:
    total = sum(DEFAULT_RETRY_SCHEDULE)
    assert 20 * 3600 <= total <= 28 * 3600
    assert list(DEFAULT_RETRY_SCHEDULE) == sorted(DEFAULT_RETRY_SCHEDULE)  # backs off


def test_each_retry_waits_its_delay_within_jitter() -> None:
    rng = random.Random(7)
    for attempts, delay in enumerate(DEFAULT_RETRY_SCHEDULE, start=1):
        at = next_attempt_at(attempts, NOW, DEFAULT_RETRY_SCHEDULE, rng=rng)
        assert at is not None
        waited = (at - NOW).total_seconds()
        assert delay * (1 - JITTER) <= waited <= delay * (1 + JITTER)


def test_jitter_spreads_retries() -> None:
    rng = random.Random(1)
    times = {next_attempt_at(5, NOW, DEFAULT_RETRY_SCHEDULE, rng=rng) for _ in range(20)}
    assert len(times) > 10


def test_gives_up_after_the_schedule() -> None:
    assert next_attempt_at(len(DEFAULT_RETRY_SCHEDULE) + 1, NOW, DEFAULT_RETRY_SCHEDULE) is None
    assert next_attempt_at(2, NOW, schedule=[1.0]) is None
    assert next_attempt_at(1, NOW, schedule=[1.0]) is not None
    assert next_attempt_at(1, NOW, schedule=[0.0]) == NOW + timedelta(0)
