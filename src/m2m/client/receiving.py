"""For callback receivers: check a status message's token and signature, then parse it.

Framework-free: give it the raw body (bytes, exactly as received: the signature covers them) and
the request's headers, from any ASGI or WSGI app::

    verifier = CallbackVerifier(signing_secret="whsec_…", callback_token="encotest")
    message = verifier.verify(body, headers)     # a StatusMessage, or InvalidCallback
    print(message.tracking_number, message.device.identifier, message.result_status)

``headers`` may be a mapping (Starlette's, Flask's, a dict), ASGI's list of byte pairs, or a WSGI
``environ`` (its ``HTTP_*`` keys are read). Answer 2xx only once the message is safely handled:
delivery is at least once, and a retry carries the same ``message_id`` (``webhook-id``).

An event subscription's receiver checks its events the same way, with the subscription's
secret::

    verifier = EventVerifier(signing_secret="whsec_…")   # shown when the subscription was made
    event = verifier.verify(body, headers)               # an Event, or InvalidCallback
    print(event.id, event.type, event.sim.iccid if event.sim else None, event.data)

Its ``webhook-id`` is the event's ``id``: the same for a retry and a replay, so deduplicate by it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from m2m.client.models import Event, StatusMessage

Headers = Mapping[str, Any] | Iterable[tuple[str | bytes, str | bytes]]


class InvalidCallback(Exception):
    """The request is not an authentic, well-formed status message."""


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def normalized_headers(headers: Headers) -> dict[str, str]:
    """Lower-case names to values, from a mapping, ASGI pairs or a WSGI environ."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    result: dict[str, str] = {}
    for name, value in pairs:
        key = _text(name)
        if key.startswith("HTTP_"):  # WSGI environ: HTTP_X_CALLBACK_TOKEN
            key = key[5:].replace("_", "-")
        if isinstance(value, str | bytes):
            result[key.lower()] = _text(value)
    return result


class CallbackVerifier:
    def __init__(
        self, *, signing_secret: str | None = None, callback_token: str | None = None
    ) -> None:
        """Either check may be skipped by passing None (the documented API has no signature)."""
        self._webhook = Webhook(signing_secret) if signing_secret else None
        self._token = callback_token

    def verify(self, body: bytes, headers: Headers) -> StatusMessage:
        lowered = normalized_headers(headers)
        if self._token is not None:
            presented = lowered.get("x-callback-token", "")
            if not hmac.compare_digest(presented.encode(), self._token.encode()):
                raise InvalidCallback("wrong or missing x-callback-token")
        if self._webhook is not None:
            try:
                self._webhook.verify(body, lowered)
            except WebhookVerificationError as error:
                raise InvalidCallback(f"bad signature: {error}") from error
            except ValueError as error:  # the library decodes the body once it is verified
                raise InvalidCallback(f"not a status message: {error}") from error
        return parse_status_message(body, lowered.get("webhook-id"))


def parse_status_message(body: bytes, message_id: str | None = None) -> StatusMessage:
    try:
        message = StatusMessage.model_validate_json(body)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "body"
        raise InvalidCallback(f"not a status message: {where}: {problem['msg']}") from error
    return message.model_copy(update={"message_id": message_id})


class EventVerifier:
    """Checks an event subscription's message: its signature (the subscription's secret; a
    message during a rotation's overlap is signed with both, and either verifies), then parses
    the envelope."""

    def __init__(self, *, signing_secret: str) -> None:
        self._webhook = Webhook(signing_secret)

    def verify(self, body: bytes, headers: Headers) -> Event:
        lowered = normalized_headers(headers)
        try:
            self._webhook.verify(body, lowered)
        except WebhookVerificationError as error:
            raise InvalidCallback(f"bad signature: {error}") from error
        except ValueError as error:
            raise InvalidCallback(f"not an event: {error}") from error
        try:
            event = Event.model_validate_json(body)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(p) for p in problem["loc"]) or "body"
            raise InvalidCallback(f"not an event: {where}: {problem['msg']}") from error
        if lowered.get("webhook-id") != event.id:
            raise InvalidCallback("the webhook-id is not the event's id")
        return event
