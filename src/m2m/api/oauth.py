"""The gateway's OAuth2 endpoints: POST /token and POST /revoke."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from m2m.api.deps import ServicesDep, client_address
from m2m.api.oauth_params import FORM, basic_challenge, read_oauth_request
from m2m.api.schemas import TokenPublic, error_responses
from m2m.errors import (
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    TooManyFailures,
    UnsupportedGrantType,
)
from m2m.failure_budget import address_key, credential_key
from m2m.services import services_of
from m2m.storage.accounts import App
from m2m.tokens import SCOPE

router = APIRouter(tags=["OAuth2"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _string_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": description,
    }


def _openapi(fields: dict[str, str]) -> dict[str, Any]:
    """Describe parameters accepted in the query string or a form body (read by hand)."""
    return {
        "parameters": [_string_param(name, text) for name, text in fields.items()],
        "requestBody": {
            "required": False,
            "content": {
                FORM: {
                    "schema": {
                        "type": "object",
                        "properties": {name: {"type": "string"} for name in fields},
                    }
                }
            },
        },
        # Client authentication only: HTTP Basic, or client_id and client_secret as parameters.
        "security": [{"clientBasic": []}],
    }


CLIENT_FIELDS = {
    "client_id": "The application's client id (or use HTTP Basic).",
    "client_secret": "The application's client secret (or use HTTP Basic).",
}


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    app: App
    client_secret: str
    params: dict[str, str]


async def _authenticate_client(request: Request, services: ServicesDep) -> AuthenticatedClient:
    """Parse the request, then authenticate the client.

    The client is checked before anything else is validated, so a caller without valid client
    credentials learns nothing but ``invalid_client``. A valid client is always served; a failed
    attempt is charged to the client_id's and the address's failure budgets, and answered 429
    once either is spent (see ``m2m.failure_budget``): knowing a client_id is not enough to lock
    its application out.
    """
    oauth = await read_oauth_request(request)
    challenge = basic_challenge() if oauth.used_basic else None
    try:
        if not oauth.client_id or oauth.client_secret is None:
            raise InvalidClient(
                "Client authentication is missing: send client_id and client_secret, or HTTP Basic."
            )
        # On the event loop: one indexed read, cheaper than a hop to the thread pool.
        app = services.tokens.authenticate_client(oauth.client_id, oauth.client_secret)
    except InvalidClient as error:
        keys = [address_key(client_address(request))]
        if oauth.client_id:
            keys.append(credential_key("client", oauth.client_id))
        wait = await run_in_threadpool(services.failures.charge, keys)
        if wait is not None:
            raise TooManyFailures(wait) from error
        error.headers.update(challenge or {})
        raise
    return AuthenticatedClient(app, oauth.client_secret, oauth.params)


@router.post(
    "/token",
    response_model=TokenPublic,
    summary="Get an access token (OAuth2 client credentials)",
    responses={**error_responses(400, 401, 413, 429)},
    openapi_extra=_openapi(
        {
            "grant_type": "client_credentials (required, here or in the form body).",
            "scope": "Optional; openid.",
            **CLIENT_FIELDS,
        }
    ),
)
async def token(request: Request) -> Response:
    """Issue the application's access token, or return its current one while it is valid."""
    # The request alone, no FastAPI dependency: m2m.api.hot_routes serves it ahead of FastAPI.
    services = services_of(request)
    client = await _authenticate_client(request, services)
    grant_type = client.params.get("grant_type")
    if not grant_type:
        raise InvalidRequest("The grant_type parameter is missing; use client_credentials.")
    if grant_type != "client_credentials":
        raise UnsupportedGrantType(
            f"grant_type {grant_type!r} is not supported; use client_credentials."
        )
    if not set(client.params.get("scope", SCOPE).split()) <= {SCOPE}:
        raise InvalidScope(f"Unknown scope; the only scope is {SCOPE!r}.")
    # The common case, the valid token handed back, is one read on the event loop; issuing a new
    # one writes, in the thread pool.
    issued = services.tokens.current_token(client.app, client.client_secret)
    if issued is None:
        issued = await run_in_threadpool(services.tokens.issue, client.app, client.client_secret)
    body = TokenPublic(
        scope=issued.scope, expires_in=issued.expires_in, access_token=issued.access_token
    )
    return JSONResponse(body.model_dump(), headers=NO_STORE)


@router.post(
    "/revoke",
    summary="Revoke an access token (RFC 7009)",
    response_class=Response,
    responses={
        200: {"description": "Revoked, or nothing to revoke"},
        **error_responses(400, 401, 413, 429),
    },
    openapi_extra=_openapi(
        {
            "token": "The access token to revoke.",
            "token_type_hint": "Optional; access_token.",
            **CLIENT_FIELDS,
        }
    ),
)
async def revoke(request: Request, services: ServicesDep) -> Response:
    """Revoke one of the application's access tokens; unknown tokens are not an error.

    Permanent tokens are not revoked here (400 `unsupported_token_type`): they are managed in
    the console's TOKEN page, where they were created, or with `m2m admin tokens delete`."""
    client = await _authenticate_client(request, services)
    token_value = client.params.get("token")
    if not token_value:
        raise InvalidRequest("The token parameter is missing.")
    await run_in_threadpool(services.tokens.revoke, client.app, token_value)
    return Response(status_code=200, headers=NO_STORE)
