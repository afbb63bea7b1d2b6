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

An event subscription's receiver checks the subscription's signing secret (both secrets while
one is being rotated) and gets the envelope as its type's model::

    verifier = EventVerifier("whsec_new…", "whsec_old…")
    event = verifier.verify(body, headers)      # SimStateChangedEvent, …, or Event (unknown type)
    if isinstance(event, SimStateChangedEvent):
        print(event.sim.iccid, event.data.from_state, event.data.to_state)
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
            _check_signature([self._webhook], body, lowered, "a status message")
        return parse_status_message(body, lowered.get("webhook-id"))


class EventVerifier:
    def __init__(self, *signing_secrets: str) -> None:
        """The subscription's signing secret; while it is rotated, the new and the old one (an
        event signed with either is accepted, as the server signs with both meanwhile)."""
        if not signing_secrets:
            raise ValueError("give the subscription's signing secret")
        self._webhooks = [Webhook(secret) for secret in signing_secrets]

    def verify(self, body: bytes, headers: Headers) -> AnyEvent:
        """The event, once its signature and timestamp are checked; InvalidCallback if not."""
        _check_signature(self._webhooks, body, normalized_headers(headers), "an event")
        return parse_event(body)


def _check_signature(
    webhooks: list[Webhook], body: bytes, headers: dict[str, str], what: str
) -> None:
    """Standard Webhooks' check with each secret in turn; InvalidCallback if none verifies."""
    problem: Exception | None = None
    for webhook in webhooks:
        try:
            webhook.verify(body, headers)
            return
        except WebhookVerificationError as error:
            problem = error
        except ValueError as error:  # the library decodes the body once it is verified
            raise InvalidCallback(f"not {what}: {error}") from error
    raise InvalidCallback(f"bad signature: {problem}") from problem


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
