"""What routes get injected: the services and the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from m2m import logs
from m2m.access import Access, actor_of, authenticate
from m2m.audit import Actor, request_id_from
from m2m.errors import M2MError, RateLimited, TooManyFailures
from m2m.failure_budget import address_key, credential_key
from m2m.services import Services, services_of

T = TypeVar("T")


async def get_services(request: Request) -> Services:
    # async, although it does not await: FastAPI runs a plain ``def`` dependency in the thread
    # pool, and that hop cost more than everything else this dependency does, on every request.
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]

bearer_scheme = HTTPBearer(
    auto_error=False, description="An OAuth2 access token from POST /token, or a permanent token."
)
api_key_scheme = APIKeyHeader(
    name="x-api-key", auto_error=False, description="The API key of your M2M account."
)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


RATE_LIMIT_SCOPE_KEY = "m2m.rate_limit"  # where the request's verdict waits for its answer


@dataclass(frozen=True, slots=True)
class Caller:
    """The credentials a request presents, not checked yet: each route checks them in the same
    database statement as its own work (see ``authorized``)."""

    services: Services
    token: str | None
    api_key: str | None
    address: str
    scope: MutableMapping[str, Any]  # the request's ASGI scope

    def failure_keys(self) -> list[str]:
        """What a failed attempt is counted against: each credential presented, the address."""
        keys = [address_key(self.address)]
        if self.token:
            keys.append(credential_key("token", self.token))
        if self.api_key:
            keys.append(credential_key("api-key", self.api_key))
        return keys


async def presented_credentials(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    api_key: Annotated[str | None, Security(api_key_scheme)],
) -> Caller:
    # Services come with the caller rather than as one more dependency: FastAPI's per-request
    # cost grows with every dependency solved.
    return Caller(
        services_of(request),
        bearer.credentials if bearer else None,
        api_key,
        client_address(request),
        request.scope,
    )


PresentedCaller = Annotated[Caller, Depends(presented_credentials)]


async def caller_of(request: Request) -> Caller:
    """``presented_credentials`` with the same security schemes, called directly: for a route
    that reads its inputs itself rather than through FastAPI's dependency solving."""
    return await presented_credentials(
        request, await bearer_scheme(request), await api_key_scheme(request)
    )


# The security requirement of every M2M API operation: the bearer token AND the API key, in one
# requirement object (the schemes' names as FastAPI registers them for ``PresentedCaller``).
CALLER_SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": [], "APIKeyHeader": []}]


async def authorized(caller: Caller, call: Callable[[], tuple[Access, T]]) -> T:
    """What ``call()`` finds, once the caller is let through: ``call`` checks the credentials and
    does the route's work in one statement.

    Valid credentials are always served (within the account's request-rate limit), whatever
    failed before from the same address. A failed check is charged to the failure budget of the
    credentials presented and of the address; past the budget it is answered 429 instead.

    The call runs on the event loop, not in the thread pool: it is one indexed read (tens of
    microseconds on SQLite, one round trip on PostgreSQL), and handing it to a thread and back
    cost several times that in CPU, and more under load, as the threads queue for the GIL. Only
    the failure path, which writes, goes to the thread pool.
    """
    services = caller.services
    try:
        access, found = call()
    except M2MError as error:
        # A call that lacks the token or the API key guesses nothing (it is refused before
        # anything is looked up): it is answered 401 and not charged. Charging it would answer
        # a later call that forgot a credential 429 instead of the 401 that says which one, and
        # would spend the budget of the valid credential it did present.
        presented = bool(caller.token and caller.api_key)
        if presented and error.status_code in (401, 403) and error.code != "subscription_suspended":
            wait = await run_in_threadpool(services.failures.charge, caller.failure_keys())
            if wait is not None:
                raise TooManyFailures(wait) from error
        raise
    logs.note_account(access.account_id)
    verdict = services.rate_limits.take(
        access.account_id, access.rate_limit_per_second, access.rate_limit_burst
    )
    caller.scope[RATE_LIMIT_SCOPE_KEY] = verdict
    if not verdict.allowed:
        raise RateLimited(verdict.retry_after)
    return found


async def current_account_id(caller: PresentedCaller) -> int:
    services = caller.services

    def check() -> tuple[Access, int]:
        access = authenticate(services.reads, services.clock, caller.token, caller.api_key)
        return access, access.account_id

    return await authorized(caller, check)


CurrentAccountId = Annotated[int, Depends(current_account_id)]


@dataclass(frozen=True, slots=True)
class Changer:
    """An authorized caller about to change something: its account, and what names it for the
    audit trail (its token, the request's X-Request-ID)."""

    account_id: int
    token: str | None
    request_id: str | None

    def actor(self, conn: Connection) -> Actor:
        """Who, for the audit trail: the application or permanent token holding the token,
        looked up on the change's own connection when the change is made, so that a replayed
        or refused request never pays for it (as ``storage.sim_updates`` asks for it)."""
        return actor_of(conn, self.token, self.request_id)


async def current_changer(request: Request, caller: PresentedCaller) -> Changer:
    account_id = await current_account_id(caller)
    # Read from the header by hand, not declared: declaring it would add a parameter to the
    # documented operations' OpenAPI for what is only a label.
    request_id = request_id_from(request.headers.get("x-request-id"))
    return Changer(account_id, caller.token, request_id)


CurrentChanger = Annotated[Changer, Depends(current_changer)]
