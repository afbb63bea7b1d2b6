"""Events: the account's event log, newest first, filtered by type, SIM and time, fifty to a
page; each event opens to its envelope as the API and subscribers receive it."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from m2m.console.web import SignedIn, form_time, page_cursor, render
from m2m.events import EventType, InvalidTypePattern, selected_types, summary
from m2m.storage import events as event_store

router = APIRouter()

PAGE_SIZE = 50
MAX_SIM_DIGITS = 20  # an ICCID has 19 or 20 digits, an MSISDN at most 15

# What the type filter offers: every type of the catalog, each family first.
TYPE_CHOICES = sorted(
    {t.value for t in EventType} | {t.value.split(".")[0] + ".*" for t in EventType},
    key=lambda choice: (choice.split(".")[0], not choice.endswith(".*"), choice),
)


def _sim_number(raw: str) -> str:
    number = "".join(raw.split()).removeprefix("+")
    if number and not (number.isascii() and number.isdigit() and len(number) <= MAX_SIM_DIGITS):
        raise ValueError("Filter by a SIM's ICCID or MSISDN (digits only).")
    return number


def _types(raw: str) -> frozenset[str] | None:
    try:
        return selected_types([raw.strip()] if raw.strip() else [])
    except InvalidTypePattern:
        raise ValueError("Filter by one of the event types offered.") from None


def _shown(event: event_store.StoredEvent) -> dict[str, Any]:
    envelope = event.envelope()
    envelope["occurred_at"] = event.occurred_at.isoformat().replace("+00:00", "Z")
    return {
        "id": event.id,
        "occurred_at": event.occurred_at,
        "type": event.type,
        "sim": event.sim,
        "sim_id": event.sim_id,
        "summary": summary(event.type, event.data),
        "envelope": json.dumps(envelope, indent=2, ensure_ascii=False),
    }


@router.get("/events")
async def events_page(
    request: Request,
    visitor: SignedIn,
    type: str = "",
    sim: str = "",
    since: str = "",
    until: str = "",
    before: int | None = None,
) -> Response:
    form: dict[str, Any] = {
        "type": type,
        "sim": sim,
        "since": since,
        "until": until,
        "type_choices": TYPE_CHOICES,
    }
    try:
        wanted = event_store.EventFilter(
            types=_types(type), since=form_time(since, "from"), until=form_time(until, "until")
        )
        number = _sim_number(sim)
        page_cursor(before)
    except ValueError as problem:
        return render(
            request,
            "events.html",
            visitor,
            status_code=400,
            error=str(problem),
            events=None,
            **form,
        )
    found: list[event_store.StoredEvent] = []
    sim_id = None
    if number:
        sim_id = await visitor.read(event_store.sim_numbered, visitor.account_id, number)
    if not number or sim_id is not None:  # an unknown SIM (or another account's) has no events
        found = await visitor.read(
            event_store.newest_first,
            visitor.account_id,
            replace(wanted, sim_id=sim_id),
            before_id=before,
            limit=PAGE_SIZE + 1,
        )
    older = found[PAGE_SIZE - 1].id if len(found) > PAGE_SIZE else None
    return render(
        request,
        "events.html",
        visitor,
        error=None,
        events=[_shown(e) for e in found[:PAGE_SIZE]],
        older=older,
        first_page=before is None,
        **form,
    )
