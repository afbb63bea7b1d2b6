"""For callback receivers: check a status message's token and signature, then parse it.

Framework-free: give it the raw body and the headers, from any ASGI or WSGI app::

    verifier = CallbackVerifier(signing_secret="whsec_…", callback_token="encotest")
    message = verifier.verify(body, headers)     # raises InvalidCallback
    print(message.tracking_number, message.result_status)
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class InvalidCallback(Exception):
    """The request is not an authentic, well-formed status message."""


@dataclass(frozen=True, slots=True)
class StatusMessage:
    tracking_number: str
    identifier: str
    identifier_type: str
    result_status: str
    messages: list[str]
    message_id: str | None  # webhook-id: the same on every retry, for de-duplication


class CallbackVerifier:
    def __init__(
        self, *, signing_secret: str | None = None, callback_token: str | None = None
    ) -> None:
        """Either check may be skipped by passing None (the documented API has no signature)."""
        self._webhook = Webhook(signing_secret) if signing_secret else None
        self._token = callback_token

    def verify(self, body: bytes, headers: Mapping[str, str]) -> StatusMessage:
        lowered = {name.lower(): value for name, value in headers.items()}
        if self._token is not None:
            presented = lowered.get("x-callback-token", "")
            if not hmac.compare_digest(presented.encode(), self._token.encode()):
                raise InvalidCallback("wrong or missing x-callback-token")
        if self._webhook is not None:
            try:
                self._webhook.verify(body, lowered)
            except WebhookVerificationError as error:
                raise InvalidCallback(f"bad signature: {error}") from error
        return parse_status_message(body, lowered.get("webhook-id"))


def parse_status_message(body: bytes, message_id: str | None = None) -> StatusMessage:
    try:
        data = json.loads(body)
        device = data["device"]
        return StatusMessage(
            tracking_number=str(data["trackingNumber"]),
            identifier=str(device["identifier"]),
            identifier_type=str(device["identifierType"]),
            result_status=str(data["resultStatus"]),
            messages=[str(m) for m in data.get("messages", [])],
            message_id=message_id,
        )
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidCallback(f"not a status message: {error!r}") from error
