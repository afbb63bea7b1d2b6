"""TOKEN: the account's application keys (client_id; a regenerated secret is shown once) and
its permanent tokens (added with a name and shown once; deleted with the red cross)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from m2m import accounts
from m2m.console.web import (
    PREFIX,
    CheckedForm,
    ConsoleError,
    SignedIn,
    Visitor,
    render,
    require_active_subscription,
    shown_once,
)
from m2m.errors import BadRequest, NotFound
from m2m.storage import accounts as account_store

router = APIRouter()


async def _page(
    request: Request, visitor: Visitor, *, status_code: int = 200, error: str | None = None
) -> Response:
    apps = await visitor.read(account_store.list_apps, visitor.account_id)
    tokens = await visitor.read(account_store.list_permanent_tokens, visitor.account_id)
    return render(
        request,
        "token.html",
        visitor,
        status_code=status_code,
        apps=apps,
        tokens=tokens,
        error=error,
    )


@router.get("/token")
async def token_page(request: Request, visitor: SignedIn) -> Response:
    return await _page(request, visitor)


@router.post("/token/apps")
async def add_app(request: Request, visitor: SignedIn, form: CheckedForm) -> Response:
    require_active_subscription(visitor, "no new applications")
    name = form.get("name")  # checked by the service, which says what is wrong with it
    services = visitor.services
    try:
        client_id, secret = await run_in_threadpool(
            accounts.create_app,
            services.engine,
            services.clock,
            visitor.account_id,
            name,
            actor=visitor.actor,
        )
    except BadRequest as problem:
        return await _page(request, visitor, status_code=422, error=problem.message)
    return shown_once(
        request,
        visitor,
        f"Application {name.strip()}",
        {"client_id": client_id, "client_secret": secret},
        "Use them with POST /token to get access tokens.",
        f"{PREFIX}/token",
    )


@router.post("/token/apps/{app_id:int}/secret")
async def regenerate_secret(
    request: Request, visitor: SignedIn, _form: CheckedForm, app_id: int
) -> Response:
    try:
        secret = await run_in_threadpool(
            accounts.regenerate_app_secret,
            visitor.services.engine,
            visitor.services.clock,
            visitor.account_id,
            app_id,
            actor=visitor.actor,
        )
    except NotFound as error:
        raise ConsoleError(404, error.message) from error
    apps = await visitor.read(account_store.list_apps, visitor.account_id)
    client_id = next((a.client_id for a in apps if a.id == app_id), "")
    return shown_once(
        request,
        visitor,
        "New client secret",
        {"client_id": client_id, "client_secret": secret},
        "The previous secret, and the access token issued with it, no longer work.",
        f"{PREFIX}/token",
    )


@router.post("/token/permanent")
async def add_token(request: Request, visitor: SignedIn, form: CheckedForm) -> Response:
    require_active_subscription(visitor, "no new permanent tokens")
    name = form.get("name")  # checked by the service, which says what is wrong with it
    services = visitor.services
    try:
        issued = await run_in_threadpool(
            accounts.create_permanent_token,
            services.engine,
            services.clock,
            visitor.account_id,
            name,
            actor=visitor.actor,
        )
    except BadRequest as problem:
        return await _page(request, visitor, status_code=422, error=problem.message)
    return shown_once(
        request,
        visitor,
        f"Permanent token {name.strip()}",
        {"Token": issued.secret},
        "Send it as 'Authorization: Bearer <token>' with your x-api-key. It is valid "
        "until you delete it.",
        f"{PREFIX}/token",
    )


@router.post("/token/permanent/{token_id:int}/delete")
async def delete_token(visitor: SignedIn, _form: CheckedForm, token_id: int) -> Response:
    try:
        await run_in_threadpool(
            accounts.delete_permanent_token,
            visitor.services.engine,
            visitor.services.clock,
            token_id,
            actor=visitor.actor,
            account_id=visitor.account_id,
        )
    except NotFound as error:
        raise ConsoleError(404, "No such permanent token in your account.") from error
    return RedirectResponse(f"{PREFIX}/token", status_code=303)
