"""Slowing down, then locking, repeated failed console logins. Pure decisions, no I/O.

Failures are counted per key — the email tried and the source address — over twice the lock
period (so the failures that caused a lock still count until it ends).
The first few are free; after that each new attempt must wait twice as long as the previous one
(1 s, 2 s, 4 s, …) after the last failure; past ``lock_after`` failures the key is locked for the
whole period. Attempts refused by the throttle are not counted (they never reach the password
check), so a lock ends on time whatever an attacker keeps sending.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Policy:
    free_failures: int
    lock_after: int
    lock: timedelta

    def wait(self, failures: Sequence[datetime], now: datetime) -> int:
        """Seconds before the next attempt may be checked (0: now). ``failures`` are the key's
        failure times within ``counted_period``, oldest first."""
        count = len(failures)
        if count < self.free_failures:
            return 0
        last = failures[-1]
        if count >= self.lock_after:
            until = last + self.lock
        else:
            until = last + timedelta(seconds=2 ** (count - self.free_failures))
        remaining = (until - now).total_seconds()
        return math.ceil(remaining) if remaining > 0 else 0


def counted_period(lock: timedelta) -> timedelta:
    return 2 * lock


def per_email_policy(lock: timedelta) -> Policy:
    """One person's account: 3 free tries, slowed after, locked after 10."""
    return Policy(free_failures=3, lock_after=10, lock=lock)


def per_address_policy(lock: timedelta) -> Policy:
    """One source address, which may be an office behind one NAT: a larger budget."""
    return Policy(free_failures=10, lock_after=50, lock=lock)
