"""Accounts and the credentials they hand out. Each function returns a secret shown only once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from m2m import credentials
from m2m.clock import Clock
from m2m.errors import BadRequest, NotFound
from m2m.freetext import name_problem
from m2m.storage import accounts as account_store
from m2m.storage.engine import write_transaction
from m2m.storage.tables import NAME_LENGTH

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


def _new_api_key(conn: Connection, clock: Clock, account_id: int) -> Issued:
    key = credentials.new_secret(API_KEY_PREFIX)
    hint = key[: len(API_KEY_PREFIX) + 4]
    key_id = account_store.add_api_key(conn, account_id, credentials.digest(key), hint, clock.now())
    return Issued(key_id, key)


def create_account(
    engine: Engine, clock: Clock, name: str, *, allow_same_name: bool = False
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
        key = _new_api_key(conn, clock, account_id)
    return Issued(account_id, key.secret)


def create_api_key(engine: Engine, clock: Clock, account_id: int) -> Issued:
    with write_transaction(engine) as conn:
        _require_account(conn, account_id)
        return _new_api_key(conn, clock, account_id)


def revoke_api_key(
    engine: Engine, clock: Clock, key_id: int, *, account_id: int | None = None
) -> None:
    """Revoke a key; given ``account_id`` (the console), only one of that account's."""
    with write_transaction(engine) as conn:
        if not account_store.revoke_api_key(conn, key_id, clock.now(), account_id=account_id):
            raise NotFound(f"No live API key with id {key_id}.")


def set_subscription(engine: Engine, account_id: int, active: bool) -> None:
    with write_transaction(engine) as conn:
        if not account_store.set_subscription(
            conn, account_id, "active" if active else "suspended"
        ):
            raise NotFound(f"No account with id {account_id}.")


def set_rate_limit(
    engine: Engine, account_id: int, per_second: float | None, burst: int | None
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
        if not account_store.set_rate_limit(conn, account_id, per_second, burst):
            raise NotFound(f"No account with id {account_id}.")


def create_app(engine: Engine, clock: Clock, account_id: int, name: str) -> tuple[str, str]:
    """A new OAuth2 application: (client_id, client_secret)."""
    name = _checked_name(name, "application")
    client_id = credentials.new_client_id()
    secret = credentials.new_secret(CLIENT_SECRET_PREFIX)
    with write_transaction(engine) as conn:
        _require_account(conn, account_id)
        account_store.add_app(
            conn, account_id, name, client_id, credentials.digest(secret), clock.now()
        )
    return client_id, secret


def regenerate_app_secret(engine: Engine, account_id: int, app_id: int) -> str:
    """A new client secret for one of the account's apps; the old secret and token stop working."""
    secret = credentials.new_secret(CLIENT_SECRET_PREFIX)
    with write_transaction(engine) as conn:
        if not account_store.replace_app_secret(
            conn, account_id, app_id, credentials.digest(secret)
        ):
            raise NotFound(f"No application with id {app_id} in your account.")
    return secret


def create_permanent_token(engine: Engine, clock: Clock, account_id: int, name: str) -> Issued:
    name = _checked_name(name, "token")
    token = credentials.new_secret(PERMANENT_TOKEN_PREFIX)
    with write_transaction(engine) as conn:
        _require_account(conn, account_id)
        token_id = account_store.add_permanent_token(
            conn, account_id, name, credentials.digest(token), clock.now()
        )
    return Issued(token_id, token)


def delete_permanent_token(engine: Engine, token_id: int, *, account_id: int | None = None) -> None:
    """Delete a token; given ``account_id`` (the console), only one of that account's."""
    with write_transaction(engine) as conn:
        if not account_store.delete_permanent_token(conn, token_id, account_id=account_id):
            raise NotFound(f"No permanent token with id {token_id}.")
