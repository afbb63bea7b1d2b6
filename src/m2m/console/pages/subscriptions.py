"""Event subscriptions, next to the callback: the account's subscriptions on the Callback page;
creating one (its signing secret shown once), pausing and resuming, deleting, rotating its
secret, replaying its events since a time; and each one's page with its recent deliveries and
their attempts. Every change goes through ``m2m.callbacks.subscriptions``, as the API's do."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from m2m import labels
from m2m.callbacks import subscriptions
from m2m.callbacks.outbound import ForbiddenTarget, InvalidCallbackUrl
from m2m.callbacks.rules import CallbackConfigError, masked
from m2m.console.web import (
    PREFIX,
    CheckedForm,
    ConsoleError,
    Form,
    SignedIn,
    Visitor,
    form_time,
    render,
    require_active_subscription,
    shown_once,
)
from m2m.events import EventType
from m2m.storage import event_subscriptions as subscription_store

router = APIRouter()

BASE = "/callback/subscriptions"
NEW_HEADER_ROWS = 2
RECENT_DELIVERIES = 20
# What the form offers to subscribe to: everything, a family, or one type of the catalog.
TYPE_CHOICES = ["*", *sorted({t.value.split(".")[0] + ".*" for t in EventType}), *EventType]


def _secret_key(visitor: Visitor) -> str:
    secret_key = visitor.services.settings.secret_key
    assert secret_key is not None  # checked at start-up
    return secret_key.get_secret_value()


def _label_filter(raw: str) -> dict[str, str]:
    """``key=value`` (the subscription gets only events of SIMs with that label), or nothing."""
    text = raw.strip()
    if not text:
        return {}
    parsed = labels.parse_filter(text)
    if parsed is None or parsed[1] is None:
        raise subscriptions.SubscriptionError(
            "label_filter", "Filter by a label as key=value, or leave it empty."
        )
    return subscriptions.check_label_filter({parsed[0]: parsed[1]})


def _headers(form: Form) -> dict[str, str]:
    return {
        name.strip(): value
        for name, value in zip(form.all("header_name"), form.all("header_value"), strict=False)
        if name.strip()
    }


async def _subscription(visitor: Visitor, public_id: str) -> subscription_store.Subscription:
    found = await visitor.read(subscription_store.get, visitor.account_id, public_id)
    if found is None:
        raise ConsoleError(404, "No such event subscription in your account.")
    return found


def _back(public_id: str | None = None) -> RedirectResponse:
    path = f"{PREFIX}{BASE}/{public_id}" if public_id else f"{PREFIX}/callback"
    return RedirectResponse(path, status_code=303)


# --- creating ---------------------------------------------------------------------------------


async def _new_form(
    request: Request, visitor: Visitor, *, status_code: int = 200, **context: Any
) -> Response:
    context.setdefault("error", None)
    context.setdefault("url", "")
    context.setdefault("chosen", ["*"])
    context.setdefault("label_filter", "")
    return render(
        request,
        "subscription_new.html",
        visitor,
        status_code=status_code,
        type_choices=TYPE_CHOICES,
        new_rows=NEW_HEADER_ROWS,
        **context,
    )


@router.get(BASE + "/new")
async def new_subscription(request: Request, visitor: SignedIn) -> Response:
    return await _new_form(request, visitor)


@router.post(BASE)
async def create(request: Request, visitor: SignedIn, form: CheckedForm) -> Response:
    """Subscribe; the answer is the only page that shows the new signing secret."""
    require_active_subscription(visitor, "no new event subscriptions")
    url = form.get("url").strip()
    chosen = form.all("event_type")
    services = visitor.services
    asked = {"url": url, "chosen": chosen, "label_filter": form.get("label_filter")}
    try:
        event_types = subscriptions.check_event_types(chosen)
        label_filter = _label_filter(form.get("label_filter"))
        headers = subscriptions.check_endpoint(
            url,
            _headers(form),
            services.address_policy,
            require_https=not services.settings.sandbox,
        )
    except (subscriptions.SubscriptionError, CallbackConfigError, InvalidCallbackUrl) as problem:
        return await _new_form(request, visitor, status_code=422, error=str(problem), **asked)
    except ForbiddenTarget as problem:
        return await _new_form(request, visitor, status_code=403, error=str(problem), **asked)
    try:
        made = await run_in_threadpool(
            lambda: subscriptions.create_subscription(
                services.engine,
                services.clock,
                _secret_key(visitor),
                visitor.account_id,
                url=url,
                headers=headers,
                event_types=event_types,
                label_filter=label_filter,
                status=subscription_store.ENABLED,
                actor=lambda _conn: visitor.actor,
            )
        )
    except subscription_store.TooManySubscriptions:
        full = (
            f"An account has at most {subscription_store.MAX_PER_ACCOUNT} event subscriptions;"
            " delete one first."
        )
        return await _new_form(request, visitor, status_code=422, error=full, **asked)
    services.notify_work()
    public_id = made.subscription.public_id
    return shown_once(
        request,
        visitor,
        "Event subscription created",
        {"Subscription": public_id, "Signing secret": made.secret},
        "Events stored from now on are sent to this URL, each signed with this secret "
        "(Standard Webhooks headers; the SDK's EventVerifier checks them).",
        f"{PREFIX}{BASE}/{public_id}",
    )


# --- one subscription -------------------------------------------------------------------------


@router.get(BASE + "/{public_id}")
async def subscription_page(
    request: Request, visitor: SignedIn, public_id: str, error: str = ""
) -> Response:
    subscription = await _subscription(visitor, public_id)
    deliveries = await visitor.read(
        subscription_store.recent_deliveries,
        visitor.account_id,
        public_id,
        RECENT_DELIVERIES,
    )
    attempts = {
        d.id: await visitor.read(subscription_store.attempts_of, visitor.account_id, d.id)
        for d in deliveries
    }
    return render(
        request,
        "subscription.html",
        visitor,
        status_code=400 if error else 200,
        error=error or None,
        subscription=subscription,
        headers=masked(subscription.headers),
        deliveries=deliveries,
        attempts=attempts,
        now=visitor.services.clock.now(),
        overlap_hours=visitor.services.settings.signing_rotation_overlap_hours,
    )


async def _set_status(visitor: Visitor, public_id: str, status: str) -> Response:
    services = visitor.services
    changed = await run_in_threadpool(
        lambda: subscriptions.change_subscription(
            services.engine,
            services.clock,
            visitor.account_id,
            public_id,
            {"status": status},
            actor=lambda _conn: visitor.actor,
        )
    )
    if changed is None:
        raise ConsoleError(404, "No such event subscription in your account.")
    services.notify_work()
    return _back(public_id)


@router.post(BASE + "/{public_id}/pause")
async def pause(visitor: SignedIn, _form: CheckedForm, public_id: str) -> Response:
    return await _set_status(visitor, public_id, subscription_store.PAUSED)


@router.post(BASE + "/{public_id}/resume")
async def resume(visitor: SignedIn, _form: CheckedForm, public_id: str) -> Response:
    return await _set_status(visitor, public_id, subscription_store.ENABLED)


@router.post(BASE + "/{public_id}/delete")
async def delete(visitor: SignedIn, _form: CheckedForm, public_id: str) -> Response:
    services = visitor.services
    deleted = await run_in_threadpool(
        lambda: subscriptions.delete_subscription(
            services.engine,
            services.clock,
            visitor.account_id,
            public_id,
            actor=lambda _conn: visitor.actor,
        )
    )
    if not deleted:
        raise ConsoleError(404, "No such event subscription in your account.")
    return _back()


@router.post(BASE + "/{public_id}/signing-secret")
async def rotate(
    request: Request, visitor: SignedIn, _form: CheckedForm, public_id: str
) -> Response:
    services = visitor.services
    rotated = await run_in_threadpool(
        lambda: subscriptions.rotate_secret(
            services.engine,
            services.clock,
            _secret_key(visitor),
            visitor.account_id,
            public_id,
            actor=lambda _conn: visitor.actor,
        )
    )
    if rotated is None:
        raise ConsoleError(404, "No such event subscription in your account.")
    hours = services.settings.signing_rotation_overlap_hours
    previous = (
        f"for {hours:g} hours, each event also carries the previous secret's signature"
        if hours
        else "the previous one stops verifying at once"
    )
    return shown_once(
        request,
        visitor,
        "New signing secret",
        {"Signing secret": rotated.secret},
        f"Events are signed with this secret from now on; {previous}.",
        f"{PREFIX}{BASE}/{public_id}",
    )


@router.post(BASE + "/{public_id}/replay")
async def replay(
    request: Request, visitor: SignedIn, form: CheckedForm, public_id: str
) -> Response:
    """Send again the events kept since a time (for a receiver that was down too long)."""
    try:
        since = form_time(form.get("since"), "replay")
    except ValueError as problem:
        return await subscription_page(request, visitor, public_id, error=str(problem))
    if since is None:
        return await subscription_page(
            request, visitor, public_id, error="Say since when to send the events again."
        )
    services = visitor.services
    replayed = await run_in_threadpool(
        lambda: subscriptions.replay(
            services.engine,
            services.clock,
            visitor.account_id,
            public_id,
            since,
            actor=lambda _conn: visitor.actor,
        )
    )
    if replayed is None:
        raise ConsoleError(404, "No such event subscription in your account.")
    services.notify_work()
    return _back(public_id)
