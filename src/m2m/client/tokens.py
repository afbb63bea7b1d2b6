"""When to ask ``/token`` again: pure decisions over a monotonic clock, no I/O.

The API has a **single active token** per application: asking for a token while one is valid hands
back that same token with its remaining lifetime. So renewing "early" cannot get a fresh token; it
only learns the same token's true expiry. The cache therefore renews shortly before the expiry it
believes in (the answer may come from a clock that runs ahead), and if the server hands back the
same token it keeps it until it really expires. Between those, a 401 (the token was revoked by
another process, or expired a little early) makes the client fetch once more and retry once.

Several threads or tasks may fetch at once without harm: the server gives them all one token.
"""

from __future__ import annotations

from dataclasses import dataclass

RENEW_MARGIN_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class CachedToken:
    value: str
    expires_at: float  # monotonic seconds
    renew_at: float

    def due(self, now: float) -> bool:
        return now >= self.renew_at


def cache_token(
    value: str, expires_in: float, asked_at: float, previous: CachedToken | None
) -> CachedToken:
    """What to remember of a ``/token`` answer; ``asked_at`` is when the request was sent.

    Counting from the moment of asking, not of the answer, errs on the early side.
    """
    expires_at = asked_at + max(0.0, expires_in)
    if previous is not None and previous.value == value:
        # The same token again: no new one can be had before it expires.
        return CachedToken(value, expires_at, expires_at)
    margin = min(RENEW_MARGIN_SECONDS, expires_in / 10)
    return CachedToken(value, expires_at, expires_at - margin)
