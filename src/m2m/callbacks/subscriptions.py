"""Event subscriptions: checking one, and saving, changing, deleting, rotating its signing
secret and replaying it, each with its audit entry in the same transaction. Shared by the API
(``/event-subscriptions``) and the console.

A subscription's URL and custom headers follow the callback's rules (``rules``, and the SSRF
guard of ``outbound``); its type patterns are checked against the catalog (``events``); its label
filter follows the labels' rules. Its signing secret is derived (``signing``), shown once, when
it is created and when it is rotated; the audit trail never holds it, nor a header's value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from m2m.audit import Actor, callback_changes, changes_between, created
from m2m.callbacks.configuration import checked_callback
from m2m.callbacks.outbound import AddressPolicy
from m2m.callbacks.signing import subscription_signing_secret
from m2m.clock import Clock
from m2m.events import InvalidTypePattern, selected_types
from m2m.labels import label_problems
from m2m.storage import audit as audit_store
from m2m.storage import event_subscriptions as subscription_store
from m2m.storage.engine import write_transaction
from m2m.storage.event_subscriptions import Subscription

MAX_TYPE_PATTERNS = 20
STATUSES = (subscription_store.ENABLED, subscription_store.PAUSED)


class SubscriptionError(ValueError):
    """A subscription is refused; ``field`` is what is wrong, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_event_types(patterns: list[str]) -> list[str]:
    """The patterns, each a catalog type, a ``family.*`` or ``*`` (``SubscriptionError`` names
    the first that is not)."""
    if not patterns:
        raise SubscriptionError("event_types", "name at least one event type (or '*')")
    if len(patterns) > MAX_TYPE_PATTERNS:
        raise SubscriptionError("event_types", f"at most {MAX_TYPE_PATTERNS} event types")
    for pattern in patterns:
        try:
            selected_types([pattern])
        except InvalidTypePattern as error:
            raise SubscriptionError("event_types", str(error)) from error
    return list(dict.fromkeys(patterns))


def check_label_filter(label_filter: dict[str, Any]) -> dict[str, str]:
    problems = label_problems(label_filter)
    if problems:
        raise SubscriptionError("label_filter", problems[0])
    return {str(key): str(value) for key, value in label_filter.items()}


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise SubscriptionError("status", f"status must be {' or '.join(STATUSES)}")
    return status


def check_endpoint(
    url: str, headers: dict[str, str], policy: AddressPolicy, *, require_https: bool
) -> dict[str, str]:
    """The headers to store, once URL and headers pass the callback's rules (raises as
    ``configuration.checked_callback``)."""
    return checked_callback(url, headers, policy, require_https=require_https)


def secret_of(secret_key: str, subscription: Subscription) -> str:
    return subscription_signing_secret(
        secret_key, subscription.public_id, subscription.signing_key_version
    )


@dataclass(frozen=True, slots=True)
class WithSecret:
    """A subscription and its signing secret, shown this once."""

    subscription: Subscription
    secret: str


def _audit(
    conn: Connection,
    subscription: Subscription,
    actor: Callable[[Connection], Actor],
    action: str,
    changes: dict[str, Any],
) -> None:
    audit_store.record(
        conn,
        account_id=subscription.account_id,
        actor=actor(conn),
        action=action,
        subject_kind="event_subscription",
        subject=subscription.public_id,
        changes=changes,
        now=subscription.updated_at,
    )


def _shown(subscription: Subscription) -> dict[str, Any]:
    """What the audit trail keeps of a subscription (header values redacted)."""
    return {
        "event_types": subscription.event_types,
        "label_filter": subscription.label_filter,
        "status": subscription.status,
    }


def create_subscription(
    engine: Engine,
    clock: Clock,
    secret_key: str,
    account_id: int,
    *,
    url: str,
    headers: dict[str, str],
    event_types: list[str],
    label_filter: dict[str, str],
    status: str,
    actor: Callable[[Connection], Actor],
) -> WithSecret:
    """Save a checked subscription; it gets the events stored from now on. Raises
    ``storage.event_subscriptions.TooManySubscriptions``."""
    with write_transaction(engine) as conn:
        subscription = subscription_store.create(
            conn,
            account_id,
            url=url,
            headers=headers,
            event_types=event_types,
            label_filter=label_filter,
            status=status,
            now=clock.now(),
        )
        changes = callback_changes(None, {}, url, headers)
        changes.update(created(**_shown(subscription)))
        _audit(conn, subscription, actor, "event_subscription.created", changes)
    return WithSecret(subscription, secret_of(secret_key, subscription))


def change_subscription(
    engine: Engine,
    clock: Clock,
    account_id: int,
    public_id: str,
    changes: dict[str, Any],
    *,
    actor: Callable[[Connection], Actor],
) -> Subscription | None:
    """Apply checked changes; None when the account has no such subscription."""
    with write_transaction(engine) as conn:
        before = subscription_store.get(conn, account_id, public_id, lock=True)
        if before is None:
            return None
        after = subscription_store.update_subscription(
            conn, account_id, public_id, changes, clock.now()
        )
        assert after is not None
        changed = changes_between(_shown(before), _shown(after))
        if before.url != after.url or before.headers != after.headers:
            changed.update(callback_changes(before.url, before.headers, after.url, after.headers))
        _audit(conn, after, actor, "event_subscription.changed", changed)
    return after


def delete_subscription(
    engine: Engine,
    clock: Clock,
    account_id: int,
    public_id: str,
    *,
    actor: Callable[[Connection], Actor],
) -> bool:
    """Delete it with its waiting messages; False when the account has no such subscription."""
    with write_transaction(engine) as conn:
        before = subscription_store.get(conn, account_id, public_id, lock=True)
        if before is None:
            return False
        subscription_store.delete_subscription(conn, account_id, public_id)
        gone = {"url": before.url, **_shown(before)}
        audit_store.record(
            conn,
            account_id=account_id,
            actor=actor(conn),
            action="event_subscription.deleted",
            subject_kind="event_subscription",
            subject=public_id,
            changes={name: {"before": value, "after": None} for name, value in gone.items()},
            now=clock.now(),
        )
    return True


def rotate_secret(
    engine: Engine,
    clock: Clock,
    secret_key: str,
    account_id: int,
    public_id: str,
    *,
    actor: Callable[[Connection], Actor],
) -> WithSecret | None:
    """A new signing secret, used from now on; for the overlap after a rotation messages carry
    the previous secret's signature too. None when the account has no such subscription."""
    with write_transaction(engine) as conn:
        version = subscription_store.bump_version(conn, account_id, public_id, clock.now())
        if version is None:
            return None
        subscription = subscription_store.get(conn, account_id, public_id)
        assert subscription is not None
        _audit(
            conn,
            subscription,
            actor,
            "event_subscription.signing_secret_rotated",
            {"signing_key_version": {"before": version - 1, "after": version}},
        )
    return WithSecret(subscription, secret_of(secret_key, subscription))


def replay(
    engine: Engine,
    clock: Clock,
    account_id: int,
    public_id: str,
    since: datetime,
    *,
    actor: Callable[[Connection], Actor],
) -> Subscription | None:
    """Deliver again the events kept since ``since`` (the cursor moves back to just before the
    first of them, never forward); None when the account has no such subscription."""
    with write_transaction(engine) as conn:
        before = subscription_store.get(conn, account_id, public_id, lock=True)
        if before is None:
            return None
        subscription_store.replay(conn, account_id, public_id, since, clock.now())
        after = subscription_store.get(conn, account_id, public_id)
        assert after is not None
        _audit(
            conn,
            after,
            actor,
            "event_subscription.replayed",
            {
                "since": {"before": None, "after": since.isoformat()},
                "cursor": {"before": before.through_event_id, "after": after.through_event_id},
            },
        )
    return after
