"""What routes get injected: the services and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from m2m.access import authenticate
from m2m.clock import Clock
from m2m.errors import M2MError, TooManyFailures
from m2m.outbound import AddressPolicy
from m2m.ratelimit import FailureLimiter
from m2m.settings import Settings
from m2m.tokens import TokenService
from m2m.worker import Worker


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: Engine
    clock: Clock
    limiter: FailureLimiter
    tokens: TokenService
    address_policy: AddressPolicy
    worker: Worker | None = None  # the in-process worker, when there is one

    def notify_work(self) -> None:
        """Wake the in-process worker; standalone workers notice new work by polling."""
        if self.worker is not None:
            self.worker.notify()


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

bearer_scheme = HTTPBearer(
    auto_error=False, description="An OAuth2 access token from POST /token, or a permanent token."
)
api_key_scheme = APIKeyHeader(
    name="x-api-key", auto_error=False, description="The API key of your M2M account."
)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def current_account_id(
    request: Request,
    services: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    api_key: Annotated[str | None, Security(api_key_scheme)],
) -> int:
    address_key = "m2m-addr:" + client_address(request)
    wait = services.limiter.retry_after(address_key)
    if wait is not None:
        raise TooManyFailures(wait)
    token = bearer.credentials if bearer else None
    try:
        return await run_in_threadpool(
            authenticate, services.engine, services.clock, token, api_key
        )
    except M2MError as error:
        if error.status_code in (401, 403) and error.code != "subscription_suspended":
            services.limiter.record_failure(address_key)
        raise


CurrentAccountId = Annotated[int, Depends(current_account_id)]
