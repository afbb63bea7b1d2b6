"""Sending one status message to a customer's callback URL, and judging the attempt.

Each message carries the documented ``x-callback-token`` and the account's custom headers, and the
Standard Webhooks headers (``webhook-id`` stable across retries, ``webhook-timestamp``,
``webhook-signature``) so receivers can verify and de-duplicate. Only a 2xx answer is success; a
redirect is not followed and counts as a failure, like a timeout or a connection error.

The per-account signing secret is derived from the server's secret key, so it is never stored:
``whsec_`` + base64(HMAC-SHA256(secret_key, "m2m-webhook-signing:<account>:<version>")); bumping
the version rotates it. For a while after a rotation (``rotation_overlap``) each message carries
two signatures, the new secret's and the previous one's, space-separated as Standard Webhooks
allows: a receiver still verifying with the old secret keeps accepting messages until it switches.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from standardwebhooks.webhooks import Webhook

from m2m import __version__
from m2m.clock import Clock
from m2m.outbound import ForbiddenTarget, InvalidCallbackUrl, post_json
from m2m.retry import next_attempt_at
from m2m.storage.requests import AttemptRecord, DueDelivery

USER_AGENT = f"m2m-callbacks/{__version__}"
log = logging.getLogger("m2m.callbacks")


def signing_secret(secret_key: str, account_id: int, version: int) -> str:
    message = f"m2m-webhook-signing:{account_id}:{version}".encode()
    raw = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(raw).decode()


def signing_versions(
    version: int, rotated_at: datetime | None, now: datetime, overlap: timedelta
) -> list[int]:
    """The secret versions a message is signed with: the current one, and the previous one
    while the last rotation is more recent than ``overlap``."""
    if version > 1 and rotated_at is not None and now < rotated_at + overlap:
        return [version, version - 1]
    return [version]


def status_message(
    tracking_number: str,
    identifier: str,
    identifier_type: str,
    result_status: str,
    messages: Sequence[str],
) -> dict[str, Any]:
    """The documented callback body."""
    return {
        "trackingNumber": tracking_number,
        "device": {"identifier": identifier, "identifierType": identifier_type},
        "resultStatus": result_status,
        "messages": list(messages),
    }


class CallbackSender:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        secret_key: str,
        clock: Clock,
        retry_schedule: Sequence[float],
        timeout_seconds: float,
        rotation_overlap: timedelta = timedelta(hours=24),
        rng: random.Random | None = None,
    ) -> None:
        self._session = session
        self._secret_key = secret_key
        self._clock = clock
        self._schedule = tuple(retry_schedule)
        self._timeout = timeout_seconds
        self._rotation_overlap = rotation_overlap
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one sender per worker, bounded cache
    def _signer(self, account_id: int, version: int) -> Webhook:
        return Webhook(signing_secret(self._secret_key, account_id, version))

    def headers(self, delivery: DueDelivery, body: str) -> dict[str, str]:
        now = self._clock.now()
        versions = signing_versions(
            delivery.signing_key_version or 1,
            delivery.signing_key_rotated_at,
            now,
            self._rotation_overlap,
        )
        signature = " ".join(
            self._signer(delivery.account_id, version).sign(delivery.id, now, body)
            for version in versions
        )
        return {
            **(delivery.headers or {}),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "x-callback-token": delivery.callback_token,
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }

    async def send(self, delivery: DueDelivery) -> AttemptRecord:
        attempted_at = self._clock.now()
        status: int | None = None
        latency_ms: int | None = None
        error: str | None = None
        if not delivery.url:
            error = "no callback URL configured"
        else:
            body = json.dumps(delivery.payload, separators=(",", ":"))
            try:
                status, latency = await post_json(
                    self._session, delivery.url, body.encode(), self.headers(delivery, body)
                )
                latency_ms = round(latency * 1000)
            except ForbiddenTarget as refused:
                # The detail (what the host resolves to) stays in the server log: shown to the
                # customer, it would let them map internal DNS names to addresses.
                log.warning("callback %s refused: %s", delivery.id, refused)
                error = "refused: the callback host is not a public address"
            except InvalidCallbackUrl as invalid:
                error = f"refused: {invalid}"[:500]
            except TimeoutError:
                error = f"timed out after {self._timeout:g} s"
            except (aiohttp.ClientError, OSError) as failure:
                error = f"connection failed: {failure}"[:500]
            except asyncio.CancelledError:
                raise
            except Exception as failure:
                # Whatever else a customer's configuration provokes in the HTTP client, it must
                # fail this one message, never the batch it travels with.
                log.exception("callback %s could not be sent", delivery.id)
                error = f"could not send: {type(failure).__name__}"
        delivered = status is not None and 200 <= status < 300
        if status is not None and not delivered:
            kind = "redirect (not followed)" if 300 <= status < 400 else "non-2xx answer"
            error = f"HTTP {status}: {kind}"
        retry_at = (
            None
            if delivered
            else next_attempt_at(
                delivery.attempts + 1, self._clock.now(), self._schedule, self._rng
            )
        )
        return AttemptRecord(
            delivery_id=delivery.id,
            attempted_at=attempted_at,
            url=delivery.url,
            status_code=status,
            error=error,
            latency_ms=latency_ms,
            delivered=delivered,
            next_attempt_at=retry_at,
        )
