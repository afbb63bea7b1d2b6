"""Setting an account's callback (URL and custom headers) and rotating its signing secret:
shared by ``POST /configure/callback`` and the console's Callback page.

The signing secret is derived from the server's secret key, the account id and a version stored
with the configuration (see ``signing``): rotating bumps the version, so the new secret is
computed, shown once, and never stored.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine

from m2m.audit import Actor, callback_changes
from m2m.callbacks.outbound import AddressPolicy, check_url
from m2m.callbacks.rules import MAX_URL_LENGTH, URL_PATTERN, CallbackConfigError, validate_headers
from m2m.callbacks.signing import signing_secret
from m2m.clock import Clock
from m2m.storage import audit as audit_store
from m2m.storage import callback_configs, outbox
from m2m.storage.engine import write_transaction

_URL = re.compile(URL_PATTERN)


def checked_callback(
    url: str, headers: dict[str, str], policy: AddressPolicy, *, require_https: bool
) -> dict[str, str]:
    """The headers to store, once URL and headers pass the rules.

    Raises ``CallbackConfigError`` or ``InvalidCallbackUrl`` (malformed) and ``ForbiddenTarget``
    (well-formed, but aimed where the server will not send).
    """
    if len(url) > MAX_URL_LENGTH or not _URL.fullmatch(url):
        raise CallbackConfigError(
            "the URL must be an absolute http:// or https:// URL, without user or password"
        )
    kept = validate_headers(headers)
    check_url(url, policy, require_https=require_https)
    return kept


def save_callback(
    engine: Engine,
    clock: Clock,
    account_id: int,
    url: str,
    headers: dict[str, str],
    *,
    actor: Actor,
) -> None:
    """Store the configuration; messages waiting for a URL (or a retry) go out now. The audit
    trail gets the URL and the header names before and after, never a header's value."""
    now = clock.now()
    with write_transaction(engine) as conn:
        before = callback_configs.get_callback_config(conn, account_id)
        callback_configs.set_callback_config(conn, account_id, url, headers, now)
        outbox.make_deliveries_due(conn, account_id, now)
        audit_store.record(
            conn,
            account_id=account_id,
            actor=actor,
            action="callback.configured",
            subject_kind="callback",
            subject=str(account_id),
            changes=callback_changes(
                before.url if before else None, before.headers if before else {}, url, headers
            ),
            now=now,
        )


def rotate_signing_secret(
    engine: Engine, clock: Clock, secret_key: str, account_id: int, *, actor: Actor
) -> str:
    """A new signing secret for the account, effective for every message sent from now on
    (recorded by its version: the secret itself is never stored)."""
    now = clock.now()
    with write_transaction(engine) as conn:
        version = callback_configs.bump_version(conn, account_id, now)
        audit_store.record(
            conn,
            account_id=account_id,
            actor=actor,
            action="callback.signing_secret_rotated",
            subject_kind="callback",
            subject=str(account_id),
            changes={"signing_key_version": {"before": version - 1, "after": version}},
            now=now,
        )
    return signing_secret(secret_key, account_id, version)
