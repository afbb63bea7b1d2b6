from __future__ import annotations

from m2m.clock import ManualClock
from m2m.failure_limiter import FailureLimiter


def test_blocks_after_budget_and_reopens_when_window_passes() -> None:
    clock = ManualClock()
    limiter = FailureLimiter(max_failures=3, window_seconds=60, clock=clock)
    for _ in range(2):
        limiter.record_failure("k")
    assert limiter.retry_after("k") is None
    clock.advance(10)
    limiter.record_failure("k")
    assert limiter.retry_after("k") == 50  # the first failure leaves the window in 50 s
    clock.advance(50)
    assert limiter.retry_after("k") is None


def test_keys_are_independent_and_any_blocked_key_blocks() -> None:
    limiter = FailureLimiter(max_failures=1, window_seconds=30, clock=ManualClock())
    limiter.record_failure("a")
    assert limiter.retry_after("b") is None
    assert limiter.retry_after("b", "a") == 30


def test_sliding_window_counts_only_recent_failures() -> None:
    clock = ManualClock()
    limiter = FailureLimiter(max_failures=2, window_seconds=10, clock=clock)
    limiter.record_failure("k")
    clock.advance(9)
    limiter.record_failure("k")
    assert limiter.retry_after("k") == 1
    clock.advance(1)
    assert limiter.retry_after("k") is None
