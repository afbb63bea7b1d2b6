"""What routes get injected: the services and the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from m2m.access import authenticate
from m2m.errors import M2MError, TooManyFailures
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


@dataclass(frozen=True, slots=True)
class Caller:
    """The credentials a request presents, not checked yet: each route checks them in the same
    database statement as its own work (see ``authorized``)."""

    services: Services
    token: str | None
    api_key: str | None
    address_key: str  # the failure limiter's key for the caller's address


async def presented_credentials(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    api_key: Annotated[str | None, Security(api_key_scheme)],
) -> Caller:
    # Services come with the caller rather than as one more dependency: FastAPI's per-request
    # cost grows with every dependency solved.
    services = services_of(request)
    address_key = "m2m-addr:" + client_address(request)
    wait = services.limiter.retry_after(address_key)
    if wait is not None:
        raise TooManyFailures(wait)
    return Caller(services, bearer.credentials if bearer else None, api_key, address_key)


PresentedCaller = Annotated[Caller, Depends(presented_credentials)]


async def caller_of(request: Request) -> Caller:
    """``presented_credentials`` with the same security schemes, called directly: for a route
    that reads its inputs itself rather than through FastAPI's dependency solving."""
    return await presented_credentials(
        request, await bearer_scheme(request), await api_key_scheme(request)
    )


# What a route that calls ``caller_of`` declares in ``openapi_extra`` (the schemes' names as
# FastAPI registers them for the routes that use ``PresentedCaller``).
CALLER_SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": []}, {"APIKeyHeader": []}]


def authorized(caller: Caller, call: Callable[[], T]) -> T:
    """``call()``, which checks the caller's credentials and does the route's work in one
    statement; the credential errors it raises count as failures against the caller's address.

    It runs on the event loop, not in the thread pool: it is one indexed read (tens of
    microseconds on SQLite, one round trip on PostgreSQL), and handing it to a thread and back
    cost several times that in CPU, and more under load, as the threads queue for the GIL.
    """
    try:
        return call()
    except M2MError as error:
        if error.status_code in (401, 403) and error.code != "subscription_suspended":
            caller.services.limiter.record_failure(caller.address_key)
        raise


async def current_account_id(caller: PresentedCaller) -> int:
    services = caller.services
    return authorized(
        caller, partial(authenticate, services.reads, services.clock, caller.token, caller.api_key)
    )


CurrentAccountId = Annotated[int, Depends(current_account_id)]
