"""Which failures are worth sending a request again for, and after how long. Pure decisions.

A call that never reached the server (the connection could not be made) is retried whatever it
is. Anything else — a timeout waiting for the answer, a broken connection, a 502/503/504 — is
retried only for calls that can be repeated without effect: reads, ``/token``, ``/revoke``,
setting the callback (it replaces the configuration), and the writes sent with an
``Idempotency-Key`` (lifecycle requests and SIM updates: the server answers a repeat with the
first answer instead of doing the work again; a 409 says the first is still running). 429
answers failed authentications: retrying would only make it worse.
"""

from __future__ import annotations

import random

import httpx

_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_RETRIED_STATUSES = frozenset({409, 502, 503, 504})


def retry_delay(
    attempt: int,
    max_retries: int,
    *,
    repeatable: bool,
    error: Exception | None = None,
    status: int | None = None,
) -> float | None:
    """Seconds to wait before sending again, or None to give up (see the module docstring)."""
    if attempt >= max_retries:
        return None
    if error is not None:
        retry = isinstance(error, _CONNECT_ERRORS) or repeatable
    else:
        retry = repeatable and status in _RETRIED_STATUSES
    if not retry:
        return None
    return min(8.0, 0.5 * 2.0**attempt) * (0.5 + random.random())  # noqa: S311 - jitter only
