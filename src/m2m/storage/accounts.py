"""Accounts and their credentials: API keys, OAuth2 applications, access tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    LargeBinary,
    ScalarSelect,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from m2m.storage.prepared import PreparedRead, PreparedStatement
from m2m.storage.tables import (
    Id,
    UTCDateTime,
    access_tokens,
    accounts,
    api_keys,
    oauth_apps,
    sim_cards,
)


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    subscription: str
    is_sandbox: bool
    created_at: datetime
    rate_limit_per_second: float | None  # None: the operator's default
    rate_limit_burst: int | None
    time_zone: str = "UTC"  # the zone of its usage days and months
    usage_warning_percent: int = 80  # of a threshold, when usage.threshold_reached is raised
    usage_policy: str = "notify"  # or "deactivate": what reaching a threshold does
    usage_reactivate: bool = False  # the SIMs the policy deactivated back at the period's end


# The columns an ``Account`` holds (the table has more, e.g. its rate limits).
ACCOUNT_COLUMNS = tuple(accounts.c[field.name] for field in fields(Account))


@dataclass(frozen=True, slots=True)
class AccountSummary:
    account: Account
    sims: int
    api_keys: int
    apps: int
    permanent_tokens: int


@dataclass(frozen=True, slots=True)
class App:
    id: int
    account_id: int
    name: str
    client_id: str
    secret_digest: bytes


@dataclass(frozen=True, slots=True)
class AppToken:
    digest: bytes
    salt: bytes
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a bearer token and an API key resolve to (each None when unknown or not live)."""

    token_account_id: int | None
    key_account_id: int | None
    subscription: str | None  # of the token's account
    rate_limit_per_second: float | None  # of the token's account; None: the default
    rate_limit_burst: int | None


@dataclass(frozen=True, slots=True)
class PermanentToken:
    id: int
    account_id: int
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    account_id: int
    hint: str
    created_at: datetime
    revoked_at: datetime | None


# --- accounts -------------------------------------------------------------------------------


def create_account(conn: Connection, name: str, now: datetime, *, is_sandbox: bool = False) -> int:
    result = conn.execute(insert(accounts).values(name=name, is_sandbox=is_sandbox, created_at=now))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def get_account(conn: Connection, account_id: int) -> Account | None:
    row = conn.execute(select(*ACCOUNT_COLUMNS).where(accounts.c.id == account_id)).one_or_none()
    return Account(**row._mapping) if row else None


def account_ids_named(conn: Connection, name: str) -> list[int]:
    """The accounts with exactly this name (names are not unique, but rarely meant to repeat)."""
    return list(
        conn.execute(
            select(accounts.c.id).where(accounts.c.name == name).order_by(accounts.c.id)
        ).scalars()
    )


def has_accounts(conn: Connection) -> bool:
    return conn.execute(select(accounts.c.id).limit(1)).first() is not None


def find_sandbox_account(conn: Connection) -> Account | None:
    row = conn.execute(select(*ACCOUNT_COLUMNS).where(accounts.c.is_sandbox).limit(1)).one_or_none()
    return Account(**row._mapping) if row else None


def _count_per_account(table: Table, *where: ColumnElement[bool]) -> ScalarSelect[int]:
    return (
        select(func.count())
        .select_from(table)
        .where(table.c.account_id == accounts.c.id, *where)
        .scalar_subquery()
    )


def list_accounts(conn: Connection) -> list[AccountSummary]:
    query = select(
        accounts,
        _count_per_account(sim_cards).label("n_sims"),
        _count_per_account(api_keys, api_keys.c.revoked_at.is_(None)).label("n_keys"),
        _count_per_account(oauth_apps).label("n_apps"),
        _count_per_account(access_tokens, access_tokens.c.app_id.is_(None)).label("n_tokens"),
    ).order_by(accounts.c.id)
    summaries = []
    for row in conn.execute(query):
        m = row._mapping
        account = Account(**{name: m[name] for name in Account.__dataclass_fields__})
        summaries.append(
            AccountSummary(account, m["n_sims"], m["n_keys"], m["n_apps"], m["n_tokens"])
        )
    return summaries


def set_rate_limit(
    conn: Connection, account_id: int, per_second: float | None, burst: int | None
) -> bool:
    """The account's own request-rate limit (None, None: the operator's default)."""
    result = conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(rate_limit_per_second=per_second, rate_limit_burst=burst)
    )
    return result.rowcount == 1


def set_usage_settings(
    conn: Connection,
    account_id: int,
    time_zone: str,
    warning_percent: int,
    policy: str,
    reactivate: bool,
) -> bool:
    result = conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(
            time_zone=time_zone,
            usage_warning_percent=warning_percent,
            usage_policy=policy,
            usage_reactivate=reactivate,
        )
    )
    return result.rowcount == 1


def set_subscription(conn: Connection, account_id: int, subscription: str) -> bool:
    result = conn.execute(
        update(accounts).where(accounts.c.id == account_id).values(subscription=subscription)
    )
    return result.rowcount == 1


# --- API keys -------------------------------------------------------------------------------


def add_api_key(conn: Connection, account_id: int, digest: bytes, hint: str, now: datetime) -> int:
    result = conn.execute(
        insert(api_keys).values(account_id=account_id, key_digest=digest, hint=hint, created_at=now)
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def list_api_keys(conn: Connection, account_id: int) -> list[ApiKey]:
    rows = conn.execute(
        select(
            api_keys.c.id,
            api_keys.c.account_id,
            api_keys.c.hint,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
        )
        .where(api_keys.c.account_id == account_id)
        .order_by(api_keys.c.id)
    )
    return [ApiKey(**row._mapping) for row in rows]


def revoke_api_key(
    conn: Connection, key_id: int, now: datetime, *, account_id: int | None = None
) -> bool:
    """Revoke a live key; with ``account_id``, only if it is that account's (the console)."""
    query = update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
    if account_id is not None:
        query = query.where(api_keys.c.account_id == account_id)
    result = conn.execute(query.values(revoked_at=now))
    return result.rowcount == 1


def find_api_key(conn: Connection, key_id: int) -> ApiKey | None:
    row = conn.execute(
        select(
            api_keys.c.id,
            api_keys.c.account_id,
            api_keys.c.hint,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
        ).where(api_keys.c.id == key_id)
    ).one_or_none()
    return ApiKey(**row._mapping) if row else None


def restore_api_key(
    conn: Connection, account_id: int, digest: bytes, hint: str, now: datetime
) -> None:
    """Make the key with this digest a live key of the account (un-revoke it, or add it)."""
    result = conn.execute(
        update(api_keys)
        .where(api_keys.c.key_digest == digest, api_keys.c.account_id == account_id)
        .values(revoked_at=None)
    )
    if result.rowcount == 0:
        add_api_key(conn, account_id, digest, hint, now)


# --- OAuth2 applications and their temporary tokens -----------------------------------------


_APP_COLUMNS = (
    oauth_apps.c.id,
    oauth_apps.c.account_id,
    oauth_apps.c.name,
    oauth_apps.c.client_id,
    oauth_apps.c.secret_digest,
)


def add_app(
    conn: Connection,
    account_id: int,
    name: str,
    client_id: str,
    secret_digest: bytes,
    now: datetime,
) -> int:
    result = conn.execute(
        insert(oauth_apps).values(
            account_id=account_id,
            name=name,
            client_id=client_id,
            secret_digest=secret_digest,
            created_at=now,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


_app_by_client_id = PreparedRead(
    select(*_APP_COLUMNS).where(oauth_apps.c.client_id == bindparam("client_id", type_=String))
)


def find_app(engine: Engine, client_id: str) -> App | None:
    """The application of this client id (a ``PreparedRead``: every /token call starts here)."""
    row = _app_by_client_id.one_or_none(engine, {"client_id": client_id})
    return App(*row) if row else None


def list_apps(conn: Connection, account_id: int) -> list[App]:
    rows = conn.execute(
        select(*_APP_COLUMNS).where(oauth_apps.c.account_id == account_id).order_by(oauth_apps.c.id)
    )
    return [App(**row._mapping) for row in rows]


_token_of_app = PreparedRead(
    select(access_tokens.c.token_digest, access_tokens.c.salt, access_tokens.c.expires_at).where(
        access_tokens.c.app_id == bindparam("app_id", type_=Id)
    )
)


def read_app_token(engine: Engine, app_id: int) -> AppToken | None:
    """``current_app_token`` as a ``PreparedRead``, outside any transaction (the common path of
    /token: the single active token handed back)."""
    row = _token_of_app.one_or_none(engine, {"app_id": app_id})
    return AppToken(digest=row[0], salt=row[1], expires_at=row[2]) if row else None


def find_app_by_id(conn: Connection, account_id: int, app_id: int) -> App | None:
    row = conn.execute(
        select(*_APP_COLUMNS).where(
            oauth_apps.c.id == app_id, oauth_apps.c.account_id == account_id
        )
    ).one_or_none()
    return App(**row._mapping) if row else None


def restore_app_secret(conn: Connection, account_id: int, client_id: str, digest: bytes) -> None:
    """Give the account's app ``client_id`` this secret again, if it has another one now (its
    token, issued under the other secret, goes with it)."""
    app = conn.execute(
        select(oauth_apps.c.id, oauth_apps.c.secret_digest).where(
            oauth_apps.c.client_id == client_id, oauth_apps.c.account_id == account_id
        )
    ).one_or_none()
    if app is not None and app.secret_digest != digest:
        replace_app_secret(conn, account_id, app.id, digest)


def replace_app_secret(conn: Connection, account_id: int, app_id: int, digest: bytes) -> bool:
    """Give the account's app a new secret and drop its token, which stops working at once."""
    result = conn.execute(
        update(oauth_apps)
        .where(oauth_apps.c.id == app_id, oauth_apps.c.account_id == account_id)
        .values(secret_digest=digest)
    )
    if result.rowcount != 1:
        return False
    conn.execute(delete(access_tokens).where(access_tokens.c.app_id == app_id))
    return True


def current_app_token(conn: Connection, app_id: int) -> AppToken | None:
    """The app's token row, live or expired (at most one exists)."""
    row = conn.execute(
        select(
            access_tokens.c.token_digest, access_tokens.c.salt, access_tokens.c.expires_at
        ).where(access_tokens.c.app_id == app_id)
    ).one_or_none()
    if row is None:
        return None
    return AppToken(digest=row.token_digest, salt=row.salt, expires_at=row.expires_at)


def replace_app_token(
    conn: Connection,
    app: App,
    stale_digest: bytes | None,
    token: AppToken,
    now: datetime,
) -> bool:
    """Swap the app's token row for a new one; False if another caller got there first.

    ``stale_digest`` is the row the caller saw (None if it saw none): the delete only removes
    that one, and UNIQUE(app_id) rejects a second concurrent insert.
    """
    if stale_digest is not None:
        deleted = conn.execute(
            delete(access_tokens).where(
                access_tokens.c.app_id == app.id, access_tokens.c.token_digest == stale_digest
            )
        )
        if deleted.rowcount != 1:
            return False
    try:
        # The savepoint is rolled back when the insert fails (leaving the block by the
        # exception), so the transaction stays usable on PostgreSQL.
        with conn.begin_nested():
            conn.execute(
                insert(access_tokens).values(
                    account_id=app.account_id,
                    app_id=app.id,
                    token_digest=token.digest,
                    salt=token.salt,
                    created_at=now,
                    expires_at=token.expires_at,
                )
            )
    except IntegrityError:
        return False
    return True


def delete_app_token(conn: Connection, app_id: int, digest: bytes) -> bool:
    result = conn.execute(
        delete(access_tokens).where(
            access_tokens.c.app_id == app_id, access_tokens.c.token_digest == digest
        )
    )
    return result.rowcount == 1


def is_permanent_token_of(conn: Connection, account_id: int, digest: bytes) -> bool:
    """Whether ``digest`` is one of the account's permanent tokens."""
    found = conn.execute(
        select(access_tokens.c.id).where(
            access_tokens.c.account_id == account_id,
            access_tokens.c.app_id.is_(None),
            access_tokens.c.token_digest == digest,
        )
    ).first()
    return found is not None


# --- permanent tokens -----------------------------------------------------------------------


def add_permanent_token(
    conn: Connection, account_id: int, name: str, digest: bytes, now: datetime
) -> int:
    result = conn.execute(
        insert(access_tokens).values(
            account_id=account_id, name=name, token_digest=digest, created_at=now
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def list_permanent_tokens(conn: Connection, account_id: int) -> list[PermanentToken]:
    rows = conn.execute(
        select(
            access_tokens.c.id,
            access_tokens.c.account_id,
            access_tokens.c.name,
            access_tokens.c.created_at,
        )
        .where(access_tokens.c.account_id == account_id, access_tokens.c.app_id.is_(None))
        .order_by(access_tokens.c.id)
    )
    return [PermanentToken(**row._mapping) for row in rows]


def find_permanent_token(conn: Connection, token_id: int) -> PermanentToken | None:
    row = conn.execute(
        select(
            access_tokens.c.id,
            access_tokens.c.account_id,
            access_tokens.c.name,
            access_tokens.c.created_at,
        ).where(access_tokens.c.id == token_id, access_tokens.c.app_id.is_(None))
    ).one_or_none()
    return PermanentToken(**row._mapping) if row else None


def delete_permanent_token(
    conn: Connection, token_id: int, *, account_id: int | None = None
) -> bool:
    """Delete a permanent token; with ``account_id``, only if it is that account's."""
    query = delete(access_tokens).where(
        access_tokens.c.id == token_id, access_tokens.c.app_id.is_(None)
    )
    if account_id is not None:
        query = query.where(access_tokens.c.account_id == account_id)
    result = conn.execute(query)
    return result.rowcount == 1


# --- the hot path ---------------------------------------------------------------------------
# Statements on the per-request path are built once, here, with bind parameters: SQLAlchemy
# memoizes a statement's cache key, so executing a prebuilt statement skips building the query
# and computing its key on every request, which cost several times the query itself.

_token_account = (
    select(access_tokens.c.account_id)
    .where(
        access_tokens.c.token_digest == bindparam("token_digest", type_=LargeBinary),
        access_tokens.c.expires_at.is_(None)
        | (access_tokens.c.expires_at > bindparam("now", type_=UTCDateTime)),
    )
    .scalar_subquery()
)
_key_account = (
    select(api_keys.c.account_id)
    .where(
        api_keys.c.key_digest == bindparam("key_digest", type_=LargeBinary),
        api_keys.c.revoked_at.is_(None),
    )
    .scalar_subquery()
)

_caller = select(_token_account.label("token_account"), _key_account.label("key_account")).subquery(
    "caller"
)

# The accounts of a bearer token and of an API key (NULL when unknown or not live), and the
# subscription of the token's account, in one row: select ``CALLER_COLUMNS`` from
# ``CALLER_ACCOUNTS`` (further joins may use ``CALLER_TOKEN_ACCOUNT``/``CALLER_KEY_ACCOUNT``),
# bind ``credential_params(…)``, and read the row's first columns with ``credentials_of``.
CALLER_TOKEN_ACCOUNT = _caller.c.token_account
CALLER_KEY_ACCOUNT = _caller.c.key_account
CALLER_COLUMNS = (
    CALLER_TOKEN_ACCOUNT,
    CALLER_KEY_ACCOUNT,
    accounts.c.subscription,
    accounts.c.rate_limit_per_second,
    accounts.c.rate_limit_burst,
)
CALLER_ACCOUNTS = _caller.outerjoin(accounts, accounts.c.id == CALLER_TOKEN_ACCOUNT)

_resolve_credentials = PreparedRead(select(*CALLER_COLUMNS).select_from(CALLER_ACCOUNTS))


def credential_params(token_digest: bytes, key_digest: bytes, now: datetime) -> dict[str, Any]:
    return {"token_digest": token_digest, "key_digest": key_digest, "now": now}


def credentials_of(row: Sequence[Any]) -> Credentials:
    """The ``Credentials`` in the first columns of a row selected with ``CALLER_COLUMNS``."""
    return Credentials(*row[: len(CALLER_COLUMNS)])


def resolve_credentials(
    engine: Engine, token_digest: bytes, key_digest: bytes, now: datetime
) -> Credentials:
    """Resolve a bearer token and an API key in one statement, run as a ``PreparedRead``."""
    row = _resolve_credentials.one_or_none(engine, credential_params(token_digest, key_digest, now))
    assert row is not None  # the statement selects from a one-row subquery
    return credentials_of(row)


# Built once: a SIM update runs it, and building it cost more than running it.
_TOKEN_HOLDER = PreparedStatement(
    select(oauth_apps.c.client_id, access_tokens.c.name)
    .select_from(access_tokens.outerjoin(oauth_apps, oauth_apps.c.id == access_tokens.c.app_id))
    .where(access_tokens.c.token_digest == bindparam("token_digest", type_=LargeBinary))
)


def token_holder(conn: Connection, token_digest: bytes) -> tuple[str, str] | None:
    """Who holds an access token, for the audit trail: ("application", its client_id) or
    ("token", a permanent token's name); None for an unknown token. Read only by the routes that
    change something, never on the read path."""
    row = _TOKEN_HOLDER.first(conn, {"token_digest": token_digest})
    if row is None:
        return None
    client_id, name = row
    return ("application", client_id) if client_id is not None else ("token", name)
