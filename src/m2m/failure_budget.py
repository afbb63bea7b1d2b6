"""A throttle that stops guessing, not customers: failed authentications are counted per key,
in the database, and only failing attempts are ever refused.

The API checks credentials first. A caller whose credentials are valid is served, whatever failed
before from the same address or with the same client_id. Only when an attempt *fails* are its
keys charged — the presented credential's fingerprint (a client_id, a token, an API key) and the
caller's address — and once any of them is over its budget within the window, the failing
attempt is answered 429 with ``Retry-After`` instead of 401, and is not recorded: an attacker
past the budget costs the server the credential check and one indexed read, nothing more. The
budget of a key refills as its failures leave the window (a sliding window), so a lock-out ends by
itself and the valid holder of the credential never meets it.

Why the database: the counts are shared by every API process (``--processes N`` must not give an
attacker N budgets), and since only failures write, the success path costs nothing. Credentials
are stored as fingerprints (SHA-256, shortened), never in clear.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from m2m.clock import Clock
from m2m.storage import auth_failures
from m2m.storage.engine import write_transaction

KEY_PREFIX = "api:"  # this throttle's keys among all the failures counted (the console's differ)
_PRUNE_EVERY = 100  # failures recorded by this process between two deletions of stale ones


def credential_key(kind: str, presented: str) -> str:
    """The key of a presented credential: its kind and a fingerprint (never the secret itself,
    and bounded whatever length an attacker sends)."""
    fingerprint = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{KEY_PREFIX}{kind}:{fingerprint}"


def address_key(address: str) -> str:
    return f"{KEY_PREFIX}addr:{address[:100]}"


@dataclass(frozen=True, slots=True)
class Budget:
    """How many failures a kind of key may have within ``window``."""

    max_failures: int
    window: timedelta

    def wait(self, failures: Sequence[datetime], now: datetime) -> int:
        """Seconds until the key may fail again (0: now); ``failures`` are its times within
        the window, oldest first. Pure."""
        if len(failures) < self.max_failures:
            return 0
        # The oldest failure that keeps the count at the budget must leave the window.
        until = failures[len(failures) - self.max_failures] + self.window
        return max(1, math.ceil((until - now).total_seconds()))


class FailureBudget:
    def __init__(
        self, engine: Engine, clock: Clock, credential_budget: Budget, address_budget: Budget
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._budgets = {"credential": credential_budget, "address": address_budget}
        self._recorded = 0

    def _budget_of(self, key: str) -> Budget:
        kind = "address" if key.startswith(KEY_PREFIX + "addr:") else "credential"
        return self._budgets[kind]

    def charge(self, keys: Sequence[str]) -> int | None:
        """A failed attempt presenting ``keys``: None if it is within every key's budget (it is
        recorded: answer 401), else the seconds to wait (nothing is written: answer 429).
        Blocking I/O: call it off the event loop."""
        now = self._clock.now()
        longest = max(budget.window for budget in self._budgets.values())
        with self._engine.connect() as conn:
            waits = [
                self._budget_of(key).wait(
                    auth_failures.recent_failures(conn, key, now - self._budget_of(key).window),
                    now,
                )
                for key in keys
            ]
        if any(waits):
            return max(waits)
        with write_transaction(self._engine) as conn:
            auth_failures.add_failures(conn, list(keys), now)
            self._recorded += 1
            if self._recorded % _PRUNE_EVERY == 0:
                auth_failures.forget_failures_before(conn, now - longest, KEY_PREFIX)
        return None
