"""Requests: the account's lifecycle requests, each one's per-device results and callback
attempts, live progress as JSON for the page's poller, and redelivery of a message."""

from __future__ import annotations

import uuid
from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from m2m.console.web import PREFIX, CheckedForm, ConsoleError, SignedIn, Visitor, render
from m2m.storage import activity, outbox, request_status
from m2m.storage import audit as audit_store
from m2m.storage.engine import write_transaction

router = APIRouter()

PAGE_SIZE = 50
ITEMS_PER_PAGE = 100


@router.get("/requests")
async def request_list(request: Request, visitor: SignedIn, before: int | None = None) -> Response:
    found, older = await visitor.read(
        activity.list_requests, visitor.account_id, before_id=before, limit=PAGE_SIZE
    )
    progress = await visitor.read(activity.progress_of, [r.id for r in found])
    return render(
        request,
        "requests.html",
        visitor,
        requests=found,
        progress=progress,
        older=found[-1].id if older and found else None,
    )


async def _find(visitor: Visitor, tracking_number: str) -> request_status.RequestSummary:
    try:
        canonical = str(uuid.UUID(tracking_number))
    except ValueError:
        canonical = ""
    found = await visitor.read(request_status.find_request, visitor.account_id, canonical)
    if found is None:
        raise ConsoleError(404, "No request with this TrackingNumber in your account.")
    return found


@router.get("/requests/{tracking_number}")
async def request_page(
    request: Request, visitor: SignedIn, tracking_number: str, after: int | None = None
) -> Response:
    found = await _find(visitor, tracking_number)
    progress = (await visitor.read(activity.progress_of, [found.id])).get(found.id)
    items, more = await visitor.read(
        activity.items_of, found.id, after_id=after, limit=ITEMS_PER_PAGE
    )
    attempts = await visitor.read(
        activity.attempts_of, [i.delivery_id for i in items if i.delivery_id]
    )
    return render(
        request,
        "request.html",
        visitor,
        req=found,
        progress=progress,
        items=items,
        attempts=attempts,
        next_after=items[-1].id if more and items else None,
    )


@router.get("/requests/{tracking_number}/progress")
async def request_progress(visitor: SignedIn, tracking_number: str) -> Response:
    """What the request page polls while the request runs."""
    found = await _find(visitor, tracking_number)
    progress = (await visitor.read(activity.progress_of, [found.id])).get(found.id)
    return JSONResponse(
        {
            "trackingNumber": found.tracking_number,
            "finished": found.finished_at is not None,
            **(asdict(progress) if progress else {}),
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/requests/{tracking_number}/deliveries/{delivery_id}/redeliver")
async def redeliver(
    visitor: SignedIn, _form: CheckedForm, tracking_number: str, delivery_id: str
) -> Response:
    """Send a callback message again, from a fresh retry schedule."""
    found = await _find(visitor, tracking_number)
    services = visitor.services

    def replay() -> bool:
        now = services.clock.now()
        with write_transaction(services.engine) as conn:
            if not outbox.redeliver(conn, visitor.account_id, delivery_id, now):
                return False
            audit_store.record(
                conn,
                account_id=visitor.account_id,
                actor=visitor.actor,
                action="callback.redelivered",
                subject_kind="callback_message",
                subject=delivery_id,
                changes={},
                now=now,
            )
            return True

    if not await run_in_threadpool(replay):
        raise ConsoleError(404, "No such callback message in your account.")
    services.notify_work()
    return RedirectResponse(f"{PREFIX}/requests/{found.tracking_number}", status_code=303)
