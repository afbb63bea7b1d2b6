"""For callback receivers: check a status message's token and signature, then parse it; and
for event subscribers, an event's signature, then its typed envelope.

Framework-free: give it the raw body (bytes, exactly as received: the signature covers them) and
the request's headers, from any ASGI or WSGI app::

    verifier = CallbackVerifier(signing_secret="whsec_…", callback_token="encotest")
    message = verifier.verify(body, headers)     # a StatusMessage, or InvalidCallback
    print(message.tracking_number, message.device.identifier, message.result_status)

``headers`` may be a mapping (Starlette's, Flask's, a dict), ASGI's list of byte pairs, or a WSGI
``environ`` (its ``HTTP_*`` keys are read). Answer 2xx only once the message is safely handled:
delivery is at least once, and a retry carries the same ``message_id`` (``webhook-id``).

An event subscription's receiver checks its events the same way, with the subscription's
secret (during a rotation's overlap a message is signed with both secrets, and either
verifies), and gets each envelope as its type's model::

    verifier = EventVerifier(signing_secret="whsec_…")   # shown when the subscription was made
    event = verifier.verify(body, headers)    # SimStateChangedEvent, …, or Event (unknown type)
    if isinstance(event, SimStateChangedEvent):
        print(event.sim.iccid, event.data.from_state, event.data.to_state)

Its ``webhook-id`` is the event's ``id``: the same for a retry and a replay, so deduplicate by it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from m2m.client.models import EVENT, AnyEvent, StatusMessage

Headers = Mapping[str, Any] | Iterable[tuple[str | bytes, str | bytes]]


class InvalidCallback(Exception):
    """The request is not an authentic, well-formed status message (or event)."""


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
            _check_signature(self._webhook, body, lowered, "a status message")
        return parse_status_message(body, lowered.get("webhook-id"))


class EventVerifier:
    """Checks an event subscription's message: its signature (the subscription's secret; a
    message during a rotation's overlap is signed with both, and either verifies), that its
    ``webhook-id`` is the event's id, then parses the envelope into its type's model."""

    def __init__(self, *, signing_secret: str) -> None:
        self._webhook = Webhook(signing_secret)

    def verify(self, body: bytes, headers: Headers) -> AnyEvent:
        lowered = normalized_headers(headers)
        _check_signature(self._webhook, body, lowered, "an event")
        event = parse_event(body)
        if lowered.get("webhook-id") != event.id:
            raise InvalidCallback("the webhook-id is not the event's id")
        return event


def _check_signature(webhook: Webhook, body: bytes, headers: dict[str, str], what: str) -> None:
    """Standard Webhooks' check (signature and timestamp); InvalidCallback if it fails."""
    try:
        webhook.verify(body, headers)
    except WebhookVerificationError as error:
        raise InvalidCallback(f"bad signature: {error}") from error
    except ValueError as error:  # the library decodes the body once it is verified
        raise InvalidCallback(f"not {what}: {error}") from error


def parse_event(body: bytes | str) -> AnyEvent:
    """An event envelope (a subscription's delivery, or one saved from the log) as its type's
    model; a type this SDK does not know parses as ``Event``."""
    try:
        return EVENT.validate_json(body)
    except ValidationError as error:
        raise InvalidCallback(f"not an event: {_first_problem(error)}") from error


def parse_status_message(body: bytes, message_id: str | None = None) -> StatusMessage:
    try:
        message = StatusMessage.model_validate_json(body)
    except ValidationError as error:
        raise InvalidCallback(f"not a status message: {_first_problem(error)}") from error
    return message.model_copy(update={"message_id": message_id})


def _first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(p) for p in problem["loc"]) or "body"
    return f"{where}: {problem['msg']}"
