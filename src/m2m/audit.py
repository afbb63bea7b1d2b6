"""The audit trail's vocabulary: who made a change, and what changed (pure; storage records it).

Every change to a SIM, a callback configuration, a credential or an account is recorded once,
by the code that makes the change, in the same transaction (``m2m.storage.audit.record``): an
entry exists exactly when its change committed. ``changes`` holds each changed field's value
before and after, never a secret (a credential's entry names it by its hint or client_id).

Lifecycle requests are recorded once per request (its TrackingNumber, operation and device
count), not once per SIM: the per-SIM state changes they cause are each SIM's history, kept by
the worker with the TrackingNumber that caused them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ActorKind(StrEnum):
    APPLICATION = "application"  # an OAuth2 application's token: named by its client_id
    PERMANENT_TOKEN = "token"  # noqa: S105 (a kind, not a secret): named by the token's name
    CONSOLE = "console"  # a console user: named by their email
    ADMIN = "admin"  # the operator's admin CLI
    SYSTEM = "system"  # the platform itself (the sandbox's seed, a policy)


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    name: str
    request_id: str | None = None  # the HTTP request that made the change, when there is one


ADMIN_CLI = Actor(ActorKind.ADMIN, "admin CLI")


def changes_between(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """``{field: {"before": …, "after": …}}`` for each field whose value differs (a field
    missing on one side is None there)."""
    return {
        name: {"before": before.get(name), "after": after.get(name)}
        for name in dict.fromkeys([*before, *after])
        if before.get(name) != after.get(name)
    }


# The actions recorded, as the API documents them (``GET /audit-events``, the docs): dotted,
# the thing changed first, so that ``action=request.`` (a prefix) selects a family.
ACTIONS: dict[str, str] = {
    "account.created": "an account was created (admin CLI), with its first API key",
    "account.suspended": "the account's subscription was suspended (admin CLI)",
    "account.resumed": "the account's subscription was made active again (admin CLI)",
    "account.rate_limit_set": "the account's request-rate limit was set or reset (admin CLI)",
    "account.usage_settings_set": "the account's usage time zone or warning percentage was set",
    "api_key.created": "an API key was created; named by its first characters",
    "api_key.revoked": "an API key was revoked",
    "application.created": "an OAuth2 application was created; named by its client_id",
    "application.secret_rotated": "an application's client secret was regenerated",
    "token.created": "a permanent token was created; named by its name",
    "token.deleted": "a permanent token was deleted",
    "console_user.created": "a console user was created (admin CLI); named by the email",
    "callback.configured": "the callback URL and headers were set (header values redacted)",
    "callback.signing_secret_rotated": "the callback signing secret was rotated",
    "callback.redelivered": "a callback message was sent again (console)",
    "event_subscription.created": "an event subscription was created; named by its id"
    " (header values redacted, never its secret)",
    "event_subscription.changed": "an event subscription's URL, headers, types, label filter or"
    " status changed",
    "event_subscription.deleted": "an event subscription was deleted",
    "event_subscription.signing_secret_rotated": "an event subscription's signing secret was"
    " rotated",
    "event_subscription.replayed": "an event subscription's events since a time were queued again",
    "request.activation": "a lifecycle request was accepted; named by its TrackingNumber",
    "request.deactivation": "a lifecycle request was accepted",
    "request.reactivation": "a lifecycle request was accepted",
    "request.termination": "a lifecycle request was accepted",
    "sim.imported": "SIM cards were imported from a CSV file (admin CLI), with their count",
    "sim.updated": "a SIM's profile was changed (PATCH /simcards/{iccid}); named by its ICCID",
}

REDACTED = "[redacted]"
MAX_REQUEST_ID_LENGTH = 100  # the column's length


def request_id_from(header: str | None) -> str | None:
    """The caller's ``X-Request-ID`` when it is sane (1 to 100 printable ASCII characters, no
    space: one token, as it will appear in log lines), else None: it is stored and shown back,
    so nothing else is kept from it."""
    if not header or len(header) > MAX_REQUEST_ID_LENGTH:
        return None
    return header if all("!" <= c <= "~" for c in header) else None


def redacted(headers: Mapping[str, str]) -> dict[str, str]:
    """Custom headers as the trail keeps them: the names, never the values (an Authorization
    header is a secret of the customer's receiver)."""
    return dict.fromkeys(headers, REDACTED)


def callback_changes(
    before_url: str | None,
    before_headers: Mapping[str, str],
    after_url: str,
    after_headers: Mapping[str, str],
) -> dict[str, Any]:
    """What a new callback configuration changed: the URL, the header names (values
    redacted), and which headers kept their name but got another value."""
    changes = changes_between(
        {"url": before_url, "headers": redacted(before_headers)},
        {"url": after_url, "headers": redacted(after_headers)},
    )
    revalued = sorted(
        name
        for name in after_headers
        if name in before_headers and before_headers[name] != after_headers[name]
    )
    if revalued:
        changes["header_values_changed"] = {"before": None, "after": revalued}
    return changes


def created(**fields: Any) -> dict[str, Any]:
    """The changes of something new: each field from None to its value."""
    return {name: {"before": None, "after": value} for name, value in fields.items()}
