"""Callback: the URL and custom headers status messages are sent with (the API's rules), and
the signing secret, shown once when it is rotated; beside them, the account's event
subscriptions (managed in ``pages.subscriptions``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from m2m.callbacks.configuration import checked_callback, rotate_signing_secret, save_callback
from m2m.callbacks.outbound import ForbiddenTarget, InvalidCallbackUrl
from m2m.callbacks.rules import MAX_HEADERS, CallbackConfigError, masked
from m2m.console.web import PREFIX, CheckedForm, SignedIn, Visitor, render, shown_once
from m2m.services import services_of
from m2m.storage import callback_configs
from m2m.storage import event_subscriptions as subscription_store

router = APIRouter()

NEW_HEADER_ROWS = 3


async def _page(
    request: Request, visitor: Visitor, *, status_code: int = 200, **context: Any
) -> Response:
    config = await visitor.read(callback_configs.get_callback_config, visitor.account_id)
    subscriptions = await visitor.read(subscription_store.list_for_account, visitor.account_id)
    context.setdefault("error", None)
    context.setdefault("url", config.url if config else None)
    return render(
        request,
        "callback.html",
        visitor,
        status_code=status_code,
        headers=masked(config.headers) if config else {},
        version=config.signing_key_version if config else 1,
        overlap_hours=services_of(request).settings.signing_rotation_overlap_hours,
        new_rows=NEW_HEADER_ROWS,
        subscriptions=subscriptions,
        max_subscriptions=subscription_store.MAX_PER_ACCOUNT,
        **context,
    )


@router.get("/callback")
async def callback_page(request: Request, visitor: SignedIn) -> Response:
    return await _page(request, visitor)


@router.post("/callback")
async def save(request: Request, visitor: SignedIn, form: CheckedForm) -> Response:
    """Kept headers keep their stored values; new rows add (or replace) headers."""
    url = form.get("url").strip()
    current = await visitor.read(callback_configs.get_callback_config, visitor.account_id)
    kept = set(form.all("keep"))
    headers = {k: v for k, v in (current.headers if current else {}).items() if k in kept}
    for name, value in zip(form.all("header_name"), form.all("header_value"), strict=False):
        if name.strip():
            headers[name.strip()] = value
    if len(headers) > MAX_HEADERS:
        return await _page(
            request, visitor, status_code=422, url=url, error=f"At most {MAX_HEADERS} headers."
        )
    services = visitor.services
    try:
        headers = checked_callback(
            url, headers, services.address_policy, require_https=not services.settings.sandbox
        )
    except (CallbackConfigError, InvalidCallbackUrl) as problem:
        return await _page(request, visitor, status_code=422, url=url, error=str(problem))
    except ForbiddenTarget as problem:
        return await _page(request, visitor, status_code=403, url=url, error=str(problem))
    await run_in_threadpool(
        save_callback,
        services.engine,
        services.clock,
        visitor.account_id,
        url,
        headers,
        actor=visitor.actor,
    )
    services.notify_work()
    return RedirectResponse(f"{PREFIX}/callback", status_code=303)


@router.post("/callback/signing-secret")
async def rotate(request: Request, visitor: SignedIn, _form: CheckedForm) -> Response:
    services = visitor.services
    assert services.settings.secret_key is not None  # checked at start-up
    secret = await run_in_threadpool(
        rotate_signing_secret,
        services.engine,
        services.clock,
        services.settings.secret_key.get_secret_value(),
        visitor.account_id,
        actor=visitor.actor,
    )
    hours = services.settings.signing_rotation_overlap_hours
    previous = (
        f"for {hours:g} hours, each message also carries the previous secret's signature, so "
        "receivers still using it keep verifying until they switch"
        if hours
        else "the previous one stops verifying at once"
    )
    return shown_once(
        request,
        visitor,
        "New signing secret",
        {"Signing secret": secret},
        f"Messages are signed with this secret from now on; {previous}. Verify the "
        "webhook-signature header with any Standard Webhooks library.",
        f"{PREFIX}/callback",
    )
