"""Per-account request-rate limits on the M2M API: a token bucket per account.

Each account may make ``per_second`` requests a second on average, in bursts of up to ``burst``
(the bucket's size); a request that finds the bucket empty is answered 429 with ``Retry-After``.
Every answer to an identified account carries the IETF RateLimit headers (draft-ietf-httpapi-
ratelimit-headers): ``RateLimit-Limit`` (the burst), ``RateLimit-Remaining`` (requests left now)
and ``RateLimit-Reset`` (seconds until the bucket is full again).

The operator sets a default (``M2M_RATE_LIMIT_PER_SECOND`` / ``M2M_RATE_LIMIT_BURST``) and may
set an account's own limit (``m2m admin accounts rate-limit``). The buckets live in each API
process's memory — a lookup must not write to the database — so with ``--processes N`` an account
may reach up to N times its limit: the limit protects the platform from a tenant's runaway loop,
it is not a billing meter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from m2m.clock import Clock

_FORGET_EVERY = 10_000  # takes between two sweeps of idle accounts' buckets


@dataclass(frozen=True, slots=True)
class RateLimit:
    per_second: float
    burst: int


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    at: float  # when ``tokens`` was counted (seconds, the clock's epoch)
    full_at: float  # when it will be full again, unused: then it is as good as no bucket


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the bucket is full
    retry_after: int  # when refused: until one request is allowed

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_seconds).encode()),
        ]


def spend(bucket: Bucket | None, limit: RateLimit, now: float) -> tuple[Bucket, Verdict]:
    """Take one request from ``bucket`` (None: a full one). Pure."""
    tokens = float(limit.burst) if bucket is None else bucket.tokens
    if bucket is not None:
        tokens = min(float(limit.burst), tokens + (now - bucket.at) * limit.per_second)
    allowed = tokens >= 1
    if allowed:
        tokens -= 1
    missing = limit.burst - tokens
    verdict = Verdict(
        allowed=allowed,
        limit=limit.burst,
        remaining=math.floor(tokens),
        reset_seconds=math.ceil(missing / limit.per_second),
        retry_after=0 if allowed else max(1, math.ceil((1 - tokens) / limit.per_second)),
    )
    return Bucket(tokens, now, now + missing / limit.per_second), verdict


class AccountBuckets:
    """The buckets of the accounts this process has served."""

    def __init__(self, default: RateLimit, clock: Clock) -> None:
        self.default = default
        self._clock = clock
        self._buckets: dict[int, Bucket] = {}
        self._takes = 0

    def take(self, account_id: int, per_second: float | None, burst: int | None) -> Verdict:
        """One request of the account, under its own limit where set (else the default)."""
        limit = RateLimit(per_second or self.default.per_second, burst or self.default.burst)
        now = self._clock.now().timestamp()
        bucket, verdict = spend(self._buckets.get(account_id), limit, now)
        self._buckets[account_id] = bucket
        self._takes += 1
        if self._takes % _FORGET_EVERY == 0:
            self._forget_idle(now)
        return verdict

    def clear(self) -> None:
        """Every account starts again with a full bucket (the sandbox's reset)."""
        self._buckets.clear()

    def _forget_idle(self, now: float) -> None:
        for account_id, bucket in list(self._buckets.items()):
            if bucket.full_at <= now:
                del self._buckets[account_id]
