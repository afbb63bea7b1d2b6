"""The callback URL's circuit breaker (``m2m.callbacks.breaker``): what counts against an
endpoint, when it opens, the probe, closing. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from m2m.callbacks.breaker import BreakerPolicy, Slot, healthy, judged, slot
from m2m.settings import DEFAULT_RETRY_SCHEDULE
from m2m.storage.callback_configs import BreakerState

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
POLICY = BreakerPolicy(threshold=5, schedule=DEFAULT_RETRY_SCHEDULE, max_cooldown=300)


def failures(count: int, prefix: str = "m") -> list[tuple[str, bool]]:
    return [(f"{prefix}{n}", False) for n in range(count)]


@pytest.mark.parametrize(
    ("status", "unreachable", "verdict"),
    [
        (200, False, True),
        (204, False, True),  # a slow receiver answering 2xx in time is healthy
        (302, False, True),  # answered: the redirect is the message's problem
        (400, False, True),
        (404, False, True),
        (408, False, False),  # request timeout
        (429, False, False),  # asking us to slow down
        (500, False, False),
        (503, False, False),
        (None, True, False),  # timed out, or the connection failed
        (None, False, None),  # never sent: refused address, invalid URL, no URL
    ],
)
def test_what_counts_against_an_endpoint(
    status: int | None, unreachable: bool, verdict: bool | None
) -> None:
    assert healthy(status, unreachable=unreachable) is verdict


def test_consecutive_unhealthy_attempts_open_it_for_the_first_retry_delay() -> None:
    almost = judged(BreakerState(), failures(4), NOW, POLICY)
    assert almost.state == BreakerState(failures=4)
    assert not almost.opened

    opened = judged(almost.state, failures(1, "n"), NOW, POLICY)
    assert opened.opened
    assert opened.state == BreakerState(5, 1, NOW + timedelta(seconds=10), None)
    assert slot(opened.state, NOW) is Slot.OPEN
    assert slot(opened.state, NOW + timedelta(seconds=10)) is Slot.PROBE


def test_a_healthy_answer_between_failures_starts_the_count_again() -> None:
    outcomes = [*failures(4), ("ok", True), *failures(4, "n")]
    after = judged(BreakerState(), outcomes, NOW, POLICY)
    assert after.state == BreakerState(failures=4)
    assert not after.opened


def test_late_failures_while_open_do_not_extend_it() -> None:
    opened = judged(BreakerState(), failures(5), NOW, POLICY).state
    later = NOW + timedelta(seconds=8)
    after = judged(opened, failures(30, "late"), later, POLICY)
    assert after.state.open_until == opened.open_until
    assert after.state.trips == 1
    assert not after.opened


def test_a_failed_probe_reopens_it_for_longer_up_to_the_maximum() -> None:
    state = judged(BreakerState(), failures(5), NOW, POLICY).state
    when = NOW
    cooldowns = []
    for n in range(8):
        when = state.open_until or when
        probing = BreakerState(state.failures, state.trips, when + timedelta(seconds=30), f"p{n}")
        after = judged(probing, [(f"p{n}", False)], when, POLICY)
        assert after.opened
        assert after.state.probe_id is None
        assert after.state.open_until is not None
        cooldowns.append((after.state.open_until - when).total_seconds())
        state = after.state
    # The retry schedule (30 s, 1 min, 2 min, 5 min, 10 min ...) capped at max_cooldown.
    assert cooldowns == [30, 60, 120, 300, 300, 300, 300, 300]


def test_a_healthy_probe_closes_it() -> None:
    probing = BreakerState(7, 2, NOW + timedelta(seconds=30), "probe")
    after = judged(probing, [("probe", True)], NOW, POLICY)
    assert after.closed
    assert after.state == BreakerState()
    assert slot(after.state, NOW) is Slot.CLOSED


def test_any_healthy_answer_closes_it_even_a_late_one() -> None:
    opened = judged(BreakerState(), failures(5), NOW, POLICY).state
    after = judged(opened, [("late", True)], NOW + timedelta(seconds=1), POLICY)
    assert after.closed
    assert after.state == BreakerState()


def test_a_failure_that_is_not_the_probe_does_not_reopen_it() -> None:
    probing = BreakerState(7, 2, NOW + timedelta(seconds=30), "probe")
    after = judged(probing, [("other", False)], NOW, POLICY)
    assert after.state == BreakerState(8, 2, NOW + timedelta(seconds=30), "probe")
    assert not after.opened
    assert not after.closed


def test_threshold_zero_never_opens() -> None:
    never = BreakerPolicy(threshold=0, schedule=DEFAULT_RETRY_SCHEDULE, max_cooldown=300)
    after = judged(BreakerState(), failures(1000), NOW, never)
    assert after.state.open_until is None
    assert slot(after.state, NOW) is Slot.CLOSED


def test_without_a_schedule_the_cooldown_is_the_maximum() -> None:
    assert BreakerPolicy(5, (), 42).cooldown(1) == timedelta(seconds=42)
