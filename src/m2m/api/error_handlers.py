"""How the API answers what went wrong: every error as JSON ``{"error", "error_description"}``,
credentials checked before a request's inputs are described, a busy database as 503."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Coroutine, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from m2m.api.deps import caller_of, current_account_id
from m2m.callbacks.rules import HEADER_NAME_PATTERN, HEADER_VALUE_PATTERN, URL_PATTERN
from m2m.errors import M2MError, OAuthError, TemporarilyUnavailable
from m2m.identifiers import MSISDN_PATTERN
from m2m.storage.engine import is_transient

M2M_PREFIX = "/m2m/1.0.0"
log = logging.getLogger("m2m.api")


def json_error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": message, **extra}, status_code=status)


def query_problem(name: str, message: str, value: Any = None) -> RequestValidationError:
    """A 422 that names the query parameter at fault, answered as FastAPI's own validation."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", name), "msg": message, "input": value}]
    )


def check_parameter_names(
    request: Request, accepted: Sequence[str], repeatable: Collection[str] = ()
) -> None:
    """Unknown parameters, and single ones given twice (FastAPI would keep the last), are 422s
    that name them: a typo must not silently widen a listing."""
    query = request.query_params
    problems = [
        {
            "type": "extra_forbidden",
            "loc": ("query", name),
            "msg": "unknown parameter; accepted: " + ", ".join(accepted),
            "input": None,
        }
        for name in sorted({n for n in query if n not in accepted})
    ]
    problems += [
        {
            "type": "value_error",
            "loc": ("query", name),
            "msg": "given more than once",
            "input": None,
        }
        for name in accepted
        if name not in repeatable and len(query.getlist(name)) > 1
    ]
    if problems:
        raise RequestValidationError(problems)


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
    return json_error(422, "invalid_request", summary, details=details)


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


async def _on_disconnect(request: Request, _error: Exception) -> JSONResponse:
    # The client left before its body was read (or was cut off at its route's body limit, see
    # ``m2m.http_limits``): nobody to answer, and nothing went wrong here.
    log.info("%s %s: the client left before its body was read", request.method, request.url.path)
    return json_error(400, "client_disconnected", "The request was not received whole.")


async def _on_unexpected(_request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=error)
    return json_error(500, "internal_error", "An unexpected error occurred; it has been logged.")


EXCEPTION_HANDLERS: dict[
    int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]
] = {
    M2MError: _on_m2m_error,
    RequestValidationError: _on_validation_error,
    StarletteHTTPException: _on_http_error,
    DBAPIError: _on_database_error,
    SQLAlchemyTimeoutError: _on_database_error,
    ClientDisconnect: _on_disconnect,
    Exception: _on_unexpected,
}
