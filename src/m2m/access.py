"""Who is calling the M2M API: a bearer token and an API key that must agree on one account."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from m2m import credentials
from m2m.audit import Actor, ActorKind
from m2m.clock import Clock
from m2m.errors import ApiKeyRejected, Forbidden, Unauthenticated
from m2m.storage import accounts as account_store
from m2m.storage import sims as sim_store


@dataclass(frozen=True, slots=True)
class Access:
    """The account a call is made for, with its own request-rate limit (None: the default)."""

    account_id: int
    rate_limit_per_second: float | None
    rate_limit_burst: int | None


def decide_access(found: account_store.Credentials) -> Access:
    """The calling account, or the error that explains why the call is refused."""
    if found.token_account_id is None:
        raise Unauthenticated("The access token is invalid, expired or revoked.")
    if found.key_account_id is None:
        raise ApiKeyRejected("The x-api-key is invalid or revoked.")
    if found.key_account_id != found.token_account_id:
        raise Forbidden(
            "The x-api-key and the access token belong to different accounts.",
            code="api_key_mismatch",
        )
    if found.subscription != "active":
        raise Forbidden("The account's subscription is suspended.", code="subscription_suspended")
    return Access(found.token_account_id, found.rate_limit_per_second, found.rate_limit_burst)


def _require_presented(token: str | None, api_key: str | None) -> tuple[str, str]:
    if not token:
        raise Unauthenticated(
            "Send an access token: 'Authorization: Bearer <token>'.", code="missing_token"
        )
    if not api_key:
        raise ApiKeyRejected(
            "Send the account's API key in the x-api-key header.", code="missing_api_key"
        )
    return token, api_key


def authenticate(engine: Engine, clock: Clock, token: str | None, api_key: str | None) -> Access:
    """The calling account, or the error that explains why the call is refused."""
    token, api_key = _require_presented(token, api_key)
    found = account_store.resolve_credentials(
        engine, credentials.digest(token), credentials.digest(api_key), clock.now()
    )
    return decide_access(found)


def find_sim(
    engine: Engine, clock: Clock, token: str | None, api_key: str | None, msisdn: str
) -> tuple[Access, sim_store.StoredSim | None]:
    """The calling account and its SIM with this MSISDN (None: there is none in the caller's
    account), after the same checks as ``authenticate``: both in one statement, the hot path."""
    token, api_key = _require_presented(token, api_key)
    found, sim = sim_store.find_sim_for_caller(
        engine, credentials.digest(token), credentials.digest(api_key), clock.now(), msisdn
    )
    return decide_access(found), sim


def actor_of(conn: Connection, token: str | None, request_id: str | None = None) -> Actor:
    """Who an authorized caller is, for the audit trail: the OAuth2 application (its client_id)
    or the permanent token (its name) whose access token was presented."""
    held = account_store.token_holder(conn, credentials.digest(token or ""))
    if held is None:  # the token was revoked between the check and now: still named
        return Actor(ActorKind.APPLICATION, "unknown", request_id)
    kind, name = held
    return Actor(ActorKind(kind), name, request_id)
