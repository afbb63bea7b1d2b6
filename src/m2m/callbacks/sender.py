"""Sending one status message to a customer's callback URL, and judging the attempt.

Each message carries the documented ``x-callback-token`` and the account's custom headers, and the
Standard Webhooks headers (``webhook-id`` stable across retries, ``webhook-timestamp``,
``webhook-signature``, see ``signing``) so receivers can verify and de-duplicate. Only a 2xx
answer is success; a redirect is not followed and counts as a failure, like a timeout or a
connection error. When to try again is ``retry``'s decision; what the attempt says about the
receiver (for its circuit breaker) is ``breaker.healthy``'s.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
from collections.abc import Sequence
from datetime import timedelta

from standardwebhooks.webhooks import Webhook

from m2m import __version__
from m2m.callbacks.breaker import healthy
from m2m.callbacks.outbound import ForbiddenTarget, InvalidCallbackUrl
from m2m.callbacks.poster import CallbackPoster, ConnectTimeout, TlsFailed
from m2m.callbacks.retry import next_attempt_at
from m2m.callbacks.sent import SentLog
from m2m.callbacks.signing import (
    signing_secret,
    signing_versions,
    subscription_signing_secret,
)
from m2m.clock import Clock
from m2m.storage.outbox import AttemptRecord, DueDelivery

USER_AGENT = f"m2m-callbacks/{__version__}"
log = logging.getLogger("m2m.callbacks")


class CallbackSender:
    def __init__(
        self,
        poster: CallbackPoster,
        *,
        secret_key: str,
        clock: Clock,
        retry_schedule: Sequence[float],
        timeout_seconds: float,
        connect_timeout_seconds: float | None = None,
        rotation_overlap: timedelta = timedelta(hours=24),
        rng: random.Random | None = None,
        sent: SentLog | None = None,
    ) -> None:
        self._poster = poster
        self._secret_key = secret_key
        self._clock = clock
        self._schedule = tuple(retry_schedule)
        self._timeout = timeout_seconds
        self._connect_timeout = connect_timeout_seconds or timeout_seconds
        self._rotation_overlap = rotation_overlap
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._sent = sent  # the sandbox's record of what went out; None elsewhere

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one sender per worker, bounded cache
    def _signer(self, account_id: int, version: int) -> Webhook:
        return Webhook(signing_secret(self._secret_key, account_id, version))

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one sender per worker, bounded cache
    def _subscription_signer(self, public_id: str, version: int) -> Webhook:
        return Webhook(subscription_signing_secret(self._secret_key, public_id, version))

    def headers(self, delivery: DueDelivery, body: str) -> dict[str, str]:
        now = self._clock.now()
        versions = signing_versions(
            delivery.signing_key_version or 1,
            delivery.signing_key_rotated_at,
            now,
            self._rotation_overlap,
        )
        if delivery.subscription_public_id is not None:
            # An event: signed with its subscription's secret; its id is the webhook-id, the
            # same for every subscription and every replay, so receivers can deduplicate.
            public_id = delivery.subscription_public_id
            webhook_id = str(delivery.event_id)
            signers = [self._subscription_signer(public_id, version) for version in versions]
        else:
            webhook_id = delivery.id
            signers = [self._signer(delivery.account_id, version) for version in versions]
        signature = " ".join(signer.sign(webhook_id, now, body) for signer in signers)
        # The X-Request-ID of the call that made the request, so a receiver's logs meet ours;
        # a customer who configured an x-request-id header of their own keeps theirs.
        custom = delivery.headers or {}
        traced = (
            {"X-Request-ID": delivery.http_request_id}
            if delivery.http_request_id and not any(h.lower() == "x-request-id" for h in custom)
            else {}
        )
        headers = {
            **traced,
            **custom,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        if delivery.callback_token is not None:
            headers["x-callback-token"] = delivery.callback_token
        headers["webhook-id"] = webhook_id
        headers["webhook-timestamp"] = str(int(now.timestamp()))
        headers["webhook-signature"] = signature
        return headers

    async def send(self, delivery: DueDelivery) -> AttemptRecord:
        attempted_at = self._clock.now()
        status: int | None = None
        latency_ms: int | None = None
        error: str | None = None
        unreachable = False
        headers: dict[str, str] = {}
        if not delivery.url:
            error = "no callback URL configured"
        else:
            body = json.dumps(delivery.payload, separators=(",", ":"))
            headers = self.headers(delivery, body)
            try:
                status, latency = await self._poster.post(delivery.url, body.encode(), headers)
                latency_ms = round(latency * 1000)
            except ForbiddenTarget as refused:
                # The detail (what the host resolves to) stays in the server log: shown to the
                # customer, it would let them map internal DNS names to addresses.
                log.warning("callback %s refused: %s", delivery.id, refused)
                error = "refused: the callback host is not a public address"
            except InvalidCallbackUrl as invalid:
                error = f"refused: {invalid}"[:500]
            except ConnectTimeout:
                error = f"could not connect within {self._connect_timeout:g} s"
                unreachable = True
            except TimeoutError:
                error = f"timed out after {self._timeout:g} s"
                unreachable = True
            except TlsFailed as failure:
                error = str(failure)[:500]
                unreachable = True
            except OSError as failure:  # CannotConnect, ReceiverHungUp, BadResponse, resets
                error = f"connection failed: {failure}"[:500]
                unreachable = True
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
        if self._sent is not None:
            self._sent.record(
                kind="callback",
                reference=delivery.payload.get("trackingNumber"),
                attempted_at=attempted_at,
                url=delivery.url,
                headers=headers,
                body=delivery.payload,
                status_code=status,
                error=error,
                delivered=delivered,
            )
        retry_at = (
            None
            if delivered
            else next_attempt_at(
                delivery.attempts + 1, self._clock.now(), self._schedule, self._rng
            )
        )
        return AttemptRecord(
            delivery_id=delivery.id,
            account_id=delivery.account_id,
            attempted_at=attempted_at,
            url=delivery.url,
            status_code=status,
            error=error,
            latency_ms=latency_ms,
            delivered=delivered,
            next_attempt_at=retry_at,
            endpoint_healthy=healthy(status, unreachable=unreachable),
            subscription_id=delivery.subscription_id,
        )
