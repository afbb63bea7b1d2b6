"""Login throttling decisions: free tries, then growing waits, then a lock that ends on time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from m2m.console.login_throttle import per_address_policy, per_email_policy

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LOCK = timedelta(minutes=15)


def failures(count: int, last: datetime = NOW) -> list[datetime]:
    return [last - timedelta(seconds=count - 1 - i) for i in range(count)]


def test_the_first_failures_are_free() -> None:
    policy = per_email_policy(LOCK)
    assert [policy.wait(failures(n), NOW) for n in range(3)] == [0, 0, 0]


def test_after_the_free_tries_each_wait_doubles_from_the_last_failure() -> None:
    policy = per_email_policy(LOCK)
    assert [policy.wait(failures(n), NOW) for n in range(3, 10)] == [1, 2, 4, 8, 16, 32, 64]
    assert policy.wait(failures(5), NOW + timedelta(seconds=4)) == 0


def test_ten_failures_lock_the_email_for_the_lock_period_then_it_ends() -> None:
    policy = per_email_policy(LOCK)
    assert policy.wait(failures(10), NOW) == 15 * 60
    assert policy.wait(failures(10), NOW + LOCK - timedelta(seconds=1)) == 1
    assert policy.wait(failures(10), NOW + LOCK) == 0


def test_a_source_address_has_a_larger_budget_than_one_email() -> None:
    assert per_address_policy(LOCK).wait(failures(9), NOW) == 0
    assert per_address_policy(LOCK).wait(failures(50), NOW) == 15 * 60
