"""Idempotent writes: what a request sent with an ``Idempotency-Key`` gets (pure; Stripe's rules).

A client that retries a write after a timeout cannot know whether the first attempt was done.
With the same key (any 1 to 255 printable ASCII characters it chooses, one per operation it
means), the server answers a retry with the first attempt's answer instead of doing the work
again. Keys are per account and kept for 24 hours (``KEY_LIFETIME``); an older key is as good
as absent and starts afresh.

For a key already seen, ``decide`` answers:

- the same request (method, path and body, ``request_digest``) whose answer is recorded:
  **replay** it (status, body and the headers that matter), whatever it was, a 4xx included;
- a different request: **mismatch** (422: the key was reused for something else);
- the same request still running: **in progress** (409 with Retry-After);
- the same request whose first attempt died (its lock, ``LOCK_DURATION``, ran out unanswered)
  or answered 5xx (which frees the key at once): **run** it again: nothing was recorded as done.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"
KEY_LENGTH = 255
_KEY = re.compile(KEY_PATTERN)
KEY_LIFETIME = timedelta(hours=24)
# How long a first attempt holds its key: longer than any write takes (a 10,000-device request
# commits in well under a second), short enough that a crashed one frees its key soon.
LOCK_DURATION = timedelta(seconds=60)
# The headers of an answer that are part of it, replayed with its status and body.
REPLAYED_HEADERS = ("content-type", "etag", "location", "retry-after", "www-authenticate")


def key_problem(key: str) -> str | None:
    """What is wrong with ``key`` as an Idempotency-Key, or None."""
    if not _KEY.fullmatch(key):
        return f"{HEADER} must be 1 to {KEY_LENGTH} printable ASCII characters"
    return None


def request_digest(method: str, path: str, body: bytes) -> bytes:
    """What makes two requests "the same request" for one key: method, path and body."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))  # length-prefixed: no ambiguous splits
        digest.update(part)
    return digest.digest()


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key's row: the first request's digest, and its answer once it has one."""

    request_digest: bytes
    created_at: datetime
    locked_until: datetime | None
    status_code: int | None
    headers: dict[str, str] | None
    body: bytes | None


class Verdict(Enum):
    RUN = "run"  # no usable record: do the work (and hold the key while doing it)
    REPLAY = "replay"
    MISMATCH = "mismatch"
    IN_PROGRESS = "in_progress"


def decide(stored: StoredKey | None, digest: bytes, now: datetime) -> Verdict:
    """What a request with this digest gets, given its key's row (None: never seen)."""
    if stored is None or stored.created_at <= now - KEY_LIFETIME:
        return Verdict.RUN
    if stored.request_digest != digest:
        return Verdict.MISMATCH
    if stored.status_code is not None:
        return Verdict.REPLAY
    if stored.locked_until is not None and stored.locked_until > now:
        return Verdict.IN_PROGRESS
    return Verdict.RUN


def retry_after_seconds(stored: StoredKey, now: datetime) -> int:
    """When a request still in progress will have answered, or have given its key up."""
    if stored.locked_until is None:
        return 1
    return max(1, math.ceil((stored.locked_until - now).total_seconds()))


def replayed_headers(headers: dict[str, str]) -> dict[str, str]:
    """The headers of an answer that are recorded with it."""
    return {name: value for name, value in headers.items() if name.lower() in REPLAYED_HEADERS}
