"""Audit: the account's audit trail, newest first, with the API's filters, fifty to a page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from m2m.audit import ACTIONS
from m2m.console.web import SignedIn, form_time, page_cursor, render
from m2m.storage import audit as audit_store

router = APIRouter()

PAGE_SIZE = 50
MAX_FILTER_LENGTH = 320


def audit_filter(
    sim: str, actor: str, action: str, since: str, until: str
) -> audit_store.AuditFilter:
    """The form's filters, or ValueError saying what is wrong with one."""
    sim, actor, action = sim.strip(), actor.strip(), action.strip()
    if sim and not (sim.isascii() and sim.isdigit() and 18 <= len(sim) <= 22):
        raise ValueError("Filter by a SIM's ICCID: 18 to 22 digits.")
    if len(actor) > MAX_FILTER_LENGTH or len(action) > 64:
        raise ValueError("That filter is longer than any name recorded.")
    return audit_store.AuditFilter(
        subject_kind="sim" if sim else None,
        subject=sim or None,
        actor=actor or None,
        actions=(action,) if action else (),
        since=form_time(since, "from"),
        until=form_time(until, "until"),
    )


@router.get("/audit")
async def audit_page(
    request: Request,
    visitor: SignedIn,
    sim: str = "",
    actor: str = "",
    action: str = "",
    since: str = "",
    until: str = "",
    before: int | None = None,
) -> Response:
    form: dict[str, Any] = {
        "sim": sim,
        "actor": actor,
        "action": action,
        "since": since,
        "until": until,
        "actions": list(ACTIONS),
    }
    try:
        wanted = audit_filter(sim, actor, action, since, until)
        page_cursor(before)
    except ValueError as problem:
        return render(
            request, "audit.html", visitor, status_code=400, error=str(problem), events=None, **form
        )
    events = await visitor.read(
        audit_store.list_events, visitor.account_id, wanted, before_id=before, limit=PAGE_SIZE + 1
    )
    older = events[PAGE_SIZE - 1].id if len(events) > PAGE_SIZE else None
    return render(
        request,
        "audit.html",
        visitor,
        error=None,
        events=events[:PAGE_SIZE],
        older=older,
        first_page=before is None,
        **form,
    )
