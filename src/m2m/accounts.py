"""Accounts and the credentials they hand out. Each function returns a secret shown only once.

Every change is recorded in the audit trail by ``actor`` (the admin CLI, a console user), in
its own transaction, naming a credential by what is not secret: a key by its hint, an
application by its client_id, a token by its name."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine

from m2m import credentials
from m2m.audit import Actor, changes_between, created
from m2m.clock import Clock
from m2m.errors import BadRequest, NotFound
from m2m.freetext import name_problem
from m2m.storage import accounts as account_store
from m2m.storage import audit as audit_store
from m2m.storage.engine import write_transaction
from m2m.storage.tables import NAME_LENGTH
from m2m.usage import usage_settings_problem

# Prefixes let secret scanners recognise a leaked credential; they are not secret.
API_KEY_PREFIX = credentials.API_KEY_PREFIX
CLIENT_SECRET_PREFIX = credentials.CLIENT_SECRET_PREFIX
PERMANENT_TOKEN_PREFIX = credentials.PERMANENT_TOKEN_PREFIX


@dataclass(frozen=True, slots=True)
class Issued:
    """A new credential: its row id and the secret, which is not stored and not shown again."""

    id: int
    secret: str


def _name_problem(name: str, what: str) -> str | None:
    """What is wrong with ``name`` (already stripped) as the name of ``what``, or None."""
    if not name:
        return f"The {what} name is empty: give it 1 to {NAME_LENGTH} characters"
    return name_problem(f"The {what} name", name, NAME_LENGTH)


def _checked_name(raw: str, what: str) -> str:
    """``raw`` without surrounding blanks, or BadRequest saying what is wrong with it. Every
    path that names an account, an application or a token (CLI, console) comes through here."""
    name = raw.strip()
    problem = _name_problem(name, what)
    if problem:
        raise BadRequest(problem + ".")
    return name


def _require_account(conn: Connection, account_id: int) -> account_store.Account:
    account = account_store.get_account(conn, account_id)
    if account is None:
        raise NotFound(f"No account with id {account_id}.")
    return account


def _record(
    conn: Connection,
    clock: Clock,
    actor: Actor,
    account_id: int,
    action: str,
    subject: tuple[str, str],
    changes: dict[str, Any],
) -> None:
    subject_kind, subject_id = subject
    audit_store.record(
        conn,
        account_id=account_id,
        actor=actor,
        action=action,
        subject_kind=subject_kind,
        subject=subject_id,
        changes=changes,
        now=clock.now(),
    )


def _new_api_key(conn: Connection, clock: Clock, account_id: int) -> tuple[Issued, str]:
    """The new key, and its hint (what the trail and the console name it by)."""
    key = credentials.new_secret(API_KEY_PREFIX)
    hint = key[: len(API_KEY_PREFIX) + 4]
    key_id = account_store.add_api_key(conn, account_id, credentials.digest(key), hint, clock.now())
    return Issued(key_id, key), hint


def create_account(
    engine: Engine, clock: Clock, name: str, *, actor: Actor, allow_same_name: bool = False
) -> Issued:
    """A new active account and its first API key (``id`` is the account's). A name another
    account has already is refused unless ``allow_same_name``: two "Acme" accounts are more
    often a script run twice than two customers."""
    name = _checked_name(name, "account")
    with write_transaction(engine) as conn:
        same = account_store.account_ids_named(conn, name)
        if same and not allow_same_name:
            ids = ", ".join(str(i) for i in same)
            raise BadRequest(
                f"an account named {name!r} exists already (id {ids}); "
                "give --force to create another one of the same name"
            )
        account_id = account_store.create_account(conn, name, clock.now())
        key, hint = _new_api_key(conn, clock, account_id)
        changes = created(name=name, api_key=hint)
        _record(conn, clock, actor, account_id, "account.created", _account(account_id), changes)
    return Issued(account_id, key.secret)


def _account(account_id: int) -> tuple[str, str]:
    return ("account", str(account_id))


def create_api_key(engine: Engine, clock: Clock, account_id: int, *, actor: Actor) -> Issued:
    with write_transaction(engine) as conn:
        _require_account(conn, account_id)
        key, hint = _new_api_key(conn, clock, account_id)
        _record(conn, clock, actor, account_id, "api_key.created", ("api_key", hint), {})
        return key


def revoke_api_key(
    engine: Engine, clock: Clock, key_id: int, *, actor: Actor, account_id: int | None = None
) -> None:
    """Revoke a key; given ``account_id`` (the console), only one of that account's."""
    with write_transaction(engine) as conn:
        key = account_store.find_api_key(conn, key_id)
        if key is None or not account_store.revoke_api_key(
            conn, key_id, clock.now(), account_id=account_id
        ):
            raise NotFound(f"No live API key with id {key_id}.")
        changes = {"revoked": {"before": False, "after": True}}
        _record(
            conn, clock, actor, key.account_id, "api_key.revoked", ("api_key", key.hint), changes
        )


def set_subscription(
    engine: Engine, clock: Clock, account_id: int, active: bool, *, actor: Actor
) -> None:
    subscription = "active" if active else "suspended"
    with write_transaction(engine) as conn:
        account = _require_account(conn, account_id)
        account_store.set_subscription(conn, account_id, subscription)
        changes = changes_between(
            {"subscription": account.subscription}, {"subscription": subscription}
        )
        action = "account.resumed" if active else "account.suspended"
        _record(conn, clock, actor, account_id, action, _account(account_id), changes)


def set_rate_limit(
    engine: Engine,
    clock: Clock,
    account_id: int,
    per_second: float | None,
    burst: int | None,
    *,
    actor: Actor,
) -> None:
    """Give the account its own request-rate limit, or (None, None) the operator's default.
    A burst defaults to twice the rate (at least 1); API processes apply it within seconds: the
    credential check that every call makes reads it."""
    if per_second is None and burst is not None:
        raise BadRequest("A burst needs a rate: give --per-second too.")
    if per_second is not None:
        if not 0 < per_second <= 1_000_000:
            raise BadRequest("The rate must be more than 0 and at most 1,000,000 per second.")
        burst = burst if burst is not None else max(1, round(2 * per_second))
        if not 1 <= burst <= 10_000_000:
            raise BadRequest("The burst must be 1 to 10,000,000 requests.")
    with write_transaction(engine) as conn:
        account = _require_account(conn, account_id)
        account_store.set_rate_limit(conn, account_id, per_second, burst)
        changes = changes_between(
            {
                "rate_limit_per_second": account.rate_limit_per_second,
                "rate_limit_burst": account.rate_limit_burst,
            },
            {"rate_limit_per_second": per_second, "rate_limit_burst": burst},
        )
        action = "account.rate_limit_set"
        _record(conn, clock, actor, account_id, action, _account(account_id), changes)


def set_usage_settings(
    engine: Engine,
    clock: Clock,
    account_id: int,
    *,
    time_zone: str | None,
    warning_percent: int | None,
    policy: str | None = None,
    reactivate: bool | None = None,
    actor: Actor,
) -> account_store.Account:
    """Set the zone of the account's usage days and months (an IANA name such as
    ``Europe/Berlin``), the percentage of a threshold at which it is warned, its policy
    (``notify``, or ``deactivate`` a SIM that reaches a threshold) and whether the SIMs the
    policy deactivated are reactivated when their period ends; None keeps."""
    if problem := usage_settings_problem(time_zone, warning_percent, policy):
        raise BadRequest(problem)
    with write_transaction(engine) as conn:
        account = _require_account(conn, account_id)
        new = replace(
            account,
            time_zone=account.time_zone if time_zone is None else time_zone,
            usage_warning_percent=(
                account.usage_warning_percent if warning_percent is None else warning_percent
            ),
            usage_policy=account.usage_policy if policy is None else policy,
            usage_reactivate=account.usage_reactivate if reactivate is None else reactivate,
        )
        account_store.set_usage_settings(
            conn,
            account_id,
            new.time_zone,
            new.usage_warning_percent,
            new.usage_policy,
            new.usage_reactivate,
        )
        changes = changes_between(_usage_settings(account), _usage_settings(new))
        if changes:
            action = "account.usage_settings_set"
            _record(conn, clock, actor, account_id, action, _account(account_id), changes)
        return new


def _usage_settings(account: account_store.Account) -> dict[str, Any]:
    return {
        "time_zone": account.time_zone,
        "usage_warning_percent": account.usage_warning_percent,
        "usage_policy": account.usage_policy,
        "usage_reactivate": account.usage_reactivate,
    }


def create_app(
    engine: Engine, clock: Clock, account_id: int, name: str, *, actor: Actor
) -> tuple[str, str]:
    """A new OAuth2 application: (client_id, client_secret)."""
    name = _checked_name(name, "application")
    client_id = credentials.new_client_id()
    secret = credentials.new_secret(CLIENT_SECRET_PREFIX)
    with write_transaction(engine) as conn:
        _require_account(conn, account_id)
        account_store.add_app(
            conn, account_id, name, client_id, credentials.digest(secret), clock.now()
        )
        subject = ("application", client_id)
        _record(conn, clock, actor, account_id, "application.created", subject, created(name=name))
    return client_id, secret


def regenerate_app_secret(
    engine: Engine, clock: Clock, account_id: int, app_id: int, *, actor: Actor
) -> str:
    """A new client secret for one of the account's apps; the old secret and token stop working."""
    secret = credentials.new_secret(CLIENT_SECRET_PREFIX)
    with write_transaction(engine) as conn:
        app = account_store.find_app_by_id(conn, account_id, app_id)
        if app is None or not account_store.replace_app_secret(
            conn, account_id, app_id, credentials.digest(secret)
        ):
            raise NotFound(f"No application with id {app_id} in your account.")
        subject = ("application", app.client_id)
        _record(conn, clock, actor, account_id, "application.secret_rotated", subject, {})
    return secret


def create_permanent_token(
    engine: Engine, clock: Clock, account_id: int, name: str, *, actor: Actor
) -> Issued:
    name = _checked_name(name, "token")
    token = credentials.new_secret(PERMANENT_TOKEN_PREFIX)
    with write_transaction(engine) as conn:
        _require_account(conn, account_id)
        token_id = account_store.add_permanent_token(
            conn, account_id, name, credentials.digest(token), clock.now()
        )
        _record(conn, clock, actor, account_id, "token.created", ("token", name), {})
    return Issued(token_id, token)


def delete_permanent_token(
    engine: Engine, clock: Clock, token_id: int, *, actor: Actor, account_id: int | None = None
) -> None:
    """Delete a token; given ``account_id`` (the console), only one of that account's."""
    with write_transaction(engine) as conn:
        found = account_store.find_permanent_token(conn, token_id)
        if found is None or not account_store.delete_permanent_token(
            conn, token_id, account_id=account_id
        ):
            raise NotFound(f"No permanent token with id {token_id}.")
        _record(conn, clock, actor, found.account_id, "token.deleted", ("token", found.name), {})
