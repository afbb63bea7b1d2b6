"""Logging in and out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from m2m.console import auth, csrf
from m2m.console.web import (
    PREFIX,
    CheckedForm,
    ConsoleError,
    SignedIn,
    delete_cookie,
    read_cookie,
    read_form,
    render,
    safe_next,
    session_rules,
    set_cookie,
)
from m2m.services import services_of

router = APIRouter()


def _login_page(
    request: Request, next_path: str, *, status_code: int = 200, **context: Any
) -> Response:
    token = csrf.new_login_token()
    response = render(
        request,
        "login.html",
        status_code=status_code,
        login_csrf=token,
        next_path=next_path,
        **context,
    )
    set_cookie(
        response, request, csrf.LOGIN_COOKIE, token, path=PREFIX + "/login", samesite="strict"
    )
    return response


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, safe_next(next), email="", error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    next_path = safe_next(form.get("next"))
    if not csrf.login_token_matches(read_cookie(request, csrf.LOGIN_COOKIE), form.get(csrf.FIELD)):
        raise ConsoleError(
            403, "The login form expired or did not come from the console. Reload it."
        )
    services = services_of(request)
    email = form.get("email")
    address = request.client.host if request.client else "unknown"
    result = await run_in_threadpool(
        auth.log_in,
        services.engine,
        services.clock,
        session_rules(services),
        email,
        form.get("password"),
        address,
    )
    if result.retry_after:
        response = _login_page(
            request,
            next_path,
            status_code=429,
            email=email,
            error=f"Too many failed attempts. Try again in {result.retry_after} s.",
        )
        response.headers["Retry-After"] = str(result.retry_after)
        return response
    if result.session_token is None:
        return _login_page(
            request, next_path, status_code=401, email=email, error="Wrong email or password."
        )
    redirect = RedirectResponse(next_path, status_code=303)
    set_cookie(
        redirect,
        request,
        auth.SESSION_COOKIE,
        result.session_token,
        max_age=int(session_rules(services).lifetime.total_seconds()),
        path=PREFIX,
        samesite="lax",
    )
    delete_cookie(redirect, request, csrf.LOGIN_COOKIE, path=PREFIX + "/login", samesite="strict")
    return redirect


@router.post("/logout")
async def logout(request: Request, visitor: SignedIn, _form: CheckedForm) -> Response:
    await run_in_threadpool(auth.log_out, visitor.services.engine, visitor.session_token)
    redirect = RedirectResponse(PREFIX + "/login", status_code=303)
    delete_cookie(redirect, request, auth.SESSION_COOKIE, path=PREFIX, samesite="lax")
    return redirect
