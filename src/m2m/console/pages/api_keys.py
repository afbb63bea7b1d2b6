"""API keys (the x-api-key header): create (shown once) and revoke; the subscription's status."""

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
    render,
    require_active_subscription,
    shown_once,
)
from m2m.errors import NotFound
from m2m.storage import accounts as account_store

router = APIRouter()


@router.get("/api-keys")
async def api_keys_page(request: Request, visitor: SignedIn) -> Response:
    keys = await visitor.read(account_store.list_api_keys, visitor.account_id)
    account = await visitor.read(account_store.get_account, visitor.account_id)
    settings = visitor.services.settings
    rate, burst = settings.rate_limit_per_second, settings.rate_limit_burst
    own = account is not None and account.rate_limit_per_second is not None
    if account is not None and account.rate_limit_per_second is not None:
        rate, burst = account.rate_limit_per_second, account.rate_limit_burst or burst
    return render(
        request,
        "api_keys.html",
        visitor,
        keys=keys,
        rate_per_second=rate,
        rate_burst=burst,
        rate_is_default=not own,
    )


@router.post("/api-keys")
async def create_key(request: Request, visitor: SignedIn, _form: CheckedForm) -> Response:
    require_active_subscription(visitor, "no new API keys")
    services = visitor.services
    issued = await run_in_threadpool(
        accounts.create_api_key,
        services.engine,
        services.clock,
        visitor.account_id,
        actor=visitor.actor,
    )
    return shown_once(
        request,
        visitor,
        "New API key",
        {"x-api-key": issued.secret},
        "Send it in the x-api-key header of every M2M API call.",
        f"{PREFIX}/api-keys",
    )


@router.post("/api-keys/{key_id:int}/revoke")
async def revoke_key(visitor: SignedIn, _form: CheckedForm, key_id: int) -> Response:
    services = visitor.services
    try:
        await run_in_threadpool(
            accounts.revoke_api_key,
            services.engine,
            services.clock,
            key_id,
            actor=visitor.actor,
            account_id=visitor.account_id,
        )
    except NotFound as error:
        raise ConsoleError(404, "No live API key with this id in your account.") from error
    return RedirectResponse(f"{PREFIX}/api-keys", status_code=303)
