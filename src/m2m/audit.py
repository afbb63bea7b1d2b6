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
