"""The console as an ASGI app of its own, mounted under ``/console`` by the API's ``create_app``:
its errors are pages (not the API's JSON) and it stays out of the OpenAPI document."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from m2m import metrics
from m2m.console.pages import (
    api_keys,
    audit,
    callback,
    events,
    login,
    overview,
    requests,
    sim_edit,
    sims,
    subscriptions,
    token,
)
from m2m.console.web import HERE, ConsoleError, LoginRequired, login_url, render
from m2m.services import Services
from m2m.storage.engine import is_transient

log = logging.getLogger("m2m.console")

# Pages load nothing from elsewhere, run only our own script, and may not be framed.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
NO_STORE = (b"cache-control", b"no-store")  # pages may show secrets once: never cache them


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/") or "/static/" in scope.get("path", "")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + SECURITY_HEADERS
                if not static:
                    headers.append(NO_STORE)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class HeadAsGet:
    """A page that answers GET answers HEAD too, with the same head and no body (FastAPI's
    routes answer only the methods they declare: HEAD was a 405 on every page)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)


async def _on_console_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ConsoleError)
    return render(request, "error.html", status_code=error.status_code, message=error.message)


async def _on_login_required(_request: Request, error: Exception) -> Response:
    assert isinstance(error, LoginRequired)
    return RedirectResponse(login_url(error.next_path), status_code=303)


async def _on_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    messages = {404: "There is no such page.", 405: "This page cannot be used that way."}
    message = messages.get(error.status_code, str(error.detail))
    return render(request, "error.html", status_code=error.status_code, message=message)


async def _on_invalid(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    fields = ", ".join(str(e.get("loc", ("",))[-1]) for e in error.errors())
    return render(
        request, "error.html", status_code=400, message=f"The address has a bad value: {fields}."
    )


async def _on_database_error(request: Request, error: Exception) -> Response:
    if not is_transient(error):
        return await _on_unexpected(request, error)
    log.warning("database busy or unavailable: %s", error)
    message = "The database is busy; nothing was changed. Try again in a moment."
    response = render(request, "error.html", status_code=503, message=message)
    response.headers["Retry-After"] = "1"
    return response


async def _on_disconnect(request: Request, _error: Exception) -> Response:
    # The visitor left (or was cut off at the form limit, see ``m2m.http_limits``) before the
    # form was read: nobody to answer, and nothing went wrong here.
    log.info("%s %s: the client left before its form was read", request.method, request.url.path)
    return Response(status_code=400)


async def _on_unexpected(request: Request, error: Exception) -> Response:
    log.exception("console error", exc_info=error)
    return render(
        request, "error.html", status_code=500, message="Something went wrong; it has been logged."
    )


def create_console(services: Services) -> FastAPI:
    console = FastAPI(
        telemetry=metrics.NO_NATIVE_TELEMETRY,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        exception_handlers={
            ConsoleError: _on_console_error,
            LoginRequired: _on_login_required,
            StarletteHTTPException: _on_http_error,
            RequestValidationError: _on_invalid,
            DBAPIError: _on_database_error,
            SQLAlchemyTimeoutError: _on_database_error,
            ClientDisconnect: _on_disconnect,
            Exception: _on_unexpected,
        },
    )
    console.state.services = services
    console.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for pages in (
        login,
        overview,
        sims,
        sim_edit,
        requests,
        callback,
        subscriptions,
        token,
        api_keys,
        events,
        audit,
    ):
        console.include_router(pages.router)
    console.add_middleware(SecurityHeaders)
    console.add_middleware(HeadAsGet)
    return console
