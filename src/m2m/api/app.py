"""``create_app(settings)``: the HTTP application, wired from explicit dependencies."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from m2m import __version__, logs
from m2m.api import gateway, lifecycle, simcards
from m2m.api.deps import Services, caller_of, current_account_id
from m2m.callback_config import HEADER_NAME_PATTERN, HEADER_VALUE_PATTERN, URL_PATTERN
from m2m.clock import Clock, SystemClock
from m2m.console.app import create_console
from m2m.errors import M2MError, OAuthError, TemporarilyUnavailable
from m2m.identifiers import MSISDN_PATTERN
from m2m.network import NetworkAdapter
from m2m.ratelimit import FailureLimiter
from m2m.runtime import address_policy, running_worker
from m2m.settings import Settings
from m2m.storage.engine import is_transient
from m2m.tokens import TokenService

M2M_PREFIX = "/m2m/1.0.0"
log = logging.getLogger("m2m.api")

DESCRIPTION = """\
A wire-compatible implementation of the operator's M2M API. Get a token with `POST /token`
(client credentials), then call `/m2m/1.0.0/...` with `Authorization: Bearer <token>` and your
account's `x-api-key`. Errors are JSON: `{"error": code, "error_description": message}`.
"""


def _json_error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": message, **extra}, status_code=status)


async def _on_m2m_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, M2MError)
    headers = dict(error.headers)
    if isinstance(error, OAuthError):
        headers.setdefault("Cache-Control", "no-store")
    return JSONResponse(error.body(), status_code=error.status_code, headers=headers)


# Plain words for the patterns the API validates, instead of the regular expression itself.
PATTERN_HINTS = {
    URL_PATTERN: "must be an absolute http:// or https:// URL, without user or password",
    HEADER_NAME_PATTERN: "only Authorization and x-* headers are allowed "
    "(x-callback-token is set per request)",
    HEADER_VALUE_PATTERN: "header values may not contain control characters (CR, LF, NUL, …)",
    MSISDN_PATTERN: "must be 8 to 15 digits, optionally after a +",
}


async def _on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    if request.url.path.startswith(M2M_PREFIX + "/"):
        # Credentials come before inputs: a caller without valid ones gets 401/403, not a
        # description of what its request lacks. FastAPI parses a JSON body before it solves
        # any dependency (and /simcards reads its msisdn itself), so the check is made here,
        # once, for every route; a caller whose dependencies passed is simply checked again.
        try:
            await current_account_id(await caller_of(request))
        except M2MError as refused:
            return await _on_m2m_error(request, refused)
        except (DBAPIError, SQLAlchemyTimeoutError) as failure:
            return await _on_database_error(request, failure)
    details = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem.get("loc", ()))
        message = str(problem.get("msg", ""))
        pattern = (problem.get("ctx") or {}).get("pattern")
        if pattern in PATTERN_HINTS:
            message = PATTERN_HINTS[pattern]
        details.append({"field": location, "problem": message})
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details) or "invalid request"
    return _json_error(422, "invalid_request", summary, details=details)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's).

    Asks each route whether it would take the path with each method, through the public
    ``matches`` protocol only: FastAPI wraps included routers in objects of its own, whose
    routes' ``methods`` are not reachable as an attribute."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


async def _on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    codes = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return JSONResponse(
        {
            "error": codes.get(error.status_code, "http_error"),
            "error_description": str(error.detail),
        },
        status_code=error.status_code,
        headers=headers,
    )


async def _on_database_error(request: Request, error: Exception) -> JSONResponse:
    if not is_transient(error):
        return await _on_unexpected(request, error)
    log.warning("database busy or unavailable: %s", error)
    return await _on_m2m_error(request, TemporarilyUnavailable())


async def _on_unexpected(_request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=error)
    return _json_error(500, "internal_error", "An unexpected error occurred; it has been logged.")


class RequireHttps:
    """Outside the sandbox, answer plain-HTTP requests with an error instead of serving them.

    The scheme is the one uvicorn saw: ``https`` with its own TLS, or the proxy's
    ``X-Forwarded-Proto`` when it runs behind a trusted TLS-terminating proxy.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("scheme") != "https":
            response = _json_error(
                403, "https_required", "This API is served over HTTPS only; use https://."
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def app_from_environment() -> FastAPI:
    """The app of one of ``m2m serve --processes N``'s processes: settings from the
    environment, its own engine; the parent process has migrated the database already."""
    logs.install()
    return create_app(Settings())


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
    adapter: NetworkAdapter | None = None,
) -> FastAPI:
    """The HTTP app; with ``settings.embedded_worker`` it runs a worker while it is up."""
    engine = engine or settings.make_engine()
    clock = clock or SystemClock()
    services = Services(
        settings=settings,
        engine=engine,
        clock=clock,
        limiter=FailureLimiter(
            settings.auth_max_failures, settings.auth_failure_window_seconds, clock
        ),
        tokens=TokenService(engine, clock, settings.token_ttl_seconds),
        address_policy=address_policy(settings),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not settings.embedded_worker:
            yield
            return
        async with running_worker(settings, engine, clock, adapter) as worker:
            services.worker = worker
            try:
                yield
            finally:
                services.worker = None

    app = FastAPI(
        title="M2M API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        exception_handlers={
            M2MError: _on_m2m_error,
            RequestValidationError: _on_validation_error,
            StarletteHTTPException: _on_http_error,
            DBAPIError: _on_database_error,
            SQLAlchemyTimeoutError: _on_database_error,
            Exception: _on_unexpected,
        },
    )
    app.state.services = services
    app.include_router(gateway.router)
    app.include_router(simcards.router, prefix=M2M_PREFIX)
    app.include_router(lifecycle.router, prefix=M2M_PREFIX)
    app.include_router(
        lifecycle.request_router(settings.max_devices_per_request), prefix=M2M_PREFIX
    )
    app.mount("/console", create_console(services))

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=303)

    if not settings.sandbox:
        app.add_middleware(RequireHttps)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["clientBasic"] = {
                "type": "http",
                "scheme": "basic",
                "description": "client_id:client_secret of an OAuth2 application.",
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
