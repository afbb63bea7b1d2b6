"""GET /m2m/1.0.0/events (extension): the caller's account's event log, oldest first, read by
cursor; and the catalog as the OpenAPI document's ``webhooks``."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from m2m.api.deps import CurrentAccountId, ServicesDep
from m2m.api.error_handlers import check_parameter_names, query_problem
from m2m.api.schemas import WholeNumber, error_responses
from m2m.events import (
    CATALOG,
    TYPE_PATTERN_LENGTH,
    Event,
    EventType,
    InvalidTypePattern,
    selected_types,
    typed_envelope,
)
from m2m.identifiers import ICCID_FORMAT_PATTERN
from m2m.paging import next_link
from m2m.storage import events as event_store

router = APIRouter(tags=["Events"])

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_TYPES = 20
PARAMETERS = ("after", "type", "sim", "limit")
REPEATABLE = ("type",)
# Event ids are positive 64-bit integers; "0" (or no cursor) reads from the oldest stored.
CURSOR_PATTERN = r"^[0-9]{1,19}$"
LAST_ID = 2**63 - 1
# A type, a family or "*": what the schema can say; ``selected_types`` then refuses a
# well-formed name that is not in the catalog.
TYPE_PATTERN = (
    r"^(\*|[a-z][a-z_]*(\.[a-z][a-z_]*)*\.\*|"
    + "|".join(re.escape(t.value) for t in EventType)
    + ")$"
)
TypePattern = Annotated[
    str, StringConstraints(pattern=TYPE_PATTERN, max_length=TYPE_PATTERN_LENGTH)
]

DESCRIPTION = """\
The account's events (see the catalog under `webhooks`), oldest first.

**Reading the log.** Start without `after` (the oldest event still kept), or with a cursor you
kept. Every page answers `cursor`: the id of its last event, or the `after` you sent when the
page is empty. Process the page's events, store `cursor`, then ask again with `after=<cursor>`.
While a page is full, the next one is also in the `Link: <…>; rel="next"` header; an empty or
short page means you have caught up: ask again later with the same cursor (poll).

**At least once.** A consumer that crashes after processing events but before storing its
cursor reads them again: deduplicate by the event's `id`. No event is skipped: ids only grow,
and an event is stored in the same transaction as the change it describes, so it is visible
exactly when that change is.

**Retention.** Events older than the operator's retention (30 days by default) are deleted. A
cursor older than that still works: you get the oldest events still kept after it.
"""


class EventPage(BaseModel):
    events: list[Event]
    cursor: str = Field(
        description="Where to read on from: the last event's id, or the `after` sent when the "
        "page is empty."
    )


@router.get(
    "/events",
    response_model=EventPage,
    summary="Read the account's event log (extension)",
    description=DESCRIPTION,
    responses={
        200: {
            "description": "A page of events, oldest first",
            "headers": {
                "Link": {
                    "description": 'The next page, while pages are full: <url>; rel="next"',
                    "schema": {"type": "string"},
                }
            },
        },
        **error_responses(401, 403, 422, 429),
    },
)
async def list_events(
    request: Request,
    account_id: CurrentAccountId,
    services: ServicesDep,
    after: Annotated[
        str | None,
        Query(
            description="A cursor: only events after it (a page's `cursor`, an event's `id`).",
            pattern=CURSOR_PATTERN,
        ),
    ] = None,
    type: Annotated[
        list[TypePattern] | None,
        Query(
            description="Only these types (repeatable, at most 20): a type of the catalog, a "
            "family (`sim.*`: every type starting with `sim.`), or `*`.",
            max_length=MAX_TYPES,
        ),
    ] = None,
    sim: Annotated[
        str | None,
        Query(description="Only the events of this SIM (its ICCID).", pattern=ICCID_FORMAT_PATTERN),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Events per page (at most 1000)."), WholeNumber
    ] = DEFAULT_LIMIT,
) -> Response:
    """The account's events after a cursor, oldest first."""
    check_parameter_names(request, PARAMETERS, REPEATABLE)
    patterns = type or []
    try:
        types = selected_types(patterns)
    except InvalidTypePattern as error:
        raise query_problem("type", str(error), patterns) from error
    # Past the last possible id: nothing after it (an empty page), not an error.
    after_id = min(int(after), LAST_ID) if after is not None else 0

    def load() -> list[tuple[int, str]]:
        with services.engine.connect() as conn:
            sim_id: int | None = None
            if sim is not None:
                sim_id = event_store.sim_of(conn, account_id, sim)
                if sim_id is None:  # not this account's SIM: nothing, as for one without events
                    return []
            return event_store.read_wire(
                conn, account_id, after=after_id, limit=limit, types=types, sim_id=sim_id
            )

    found = await run_in_threadpool(services.page_reads.run, load)
    cursor = str(found[-1][0]) if found else str(after_id)
    # The envelopes come as JSON text around the stored documents (valid by construction: the
    # EventPage model describes the answer in the OpenAPI document, it does not re-check it).
    body = '{"events":[' + ",".join(wire for _, wire in found) + f'],"cursor":"{cursor}"}}'
    headers = {"Link": next_link(str(request.url), cursor, "after")} if len(found) == limit else {}
    return Response(body, media_type="application/json", headers=headers)


def add_webhooks(app: FastAPI) -> None:
    """The catalog in the OpenAPI document (3.1 ``webhooks``): one entry per event type, its
    body the envelope with that type's ``data``."""
    for event_type, (version, _) in CATALOG.items():
        model = typed_envelope(event_type)

        async def receive(body: Any) -> None:  # documentation only: never served
            del body

        receive.__annotations__["body"] = model
        app.webhooks.add_api_route(
            event_type.value,
            receive,
            methods=["POST"],
            name=event_type.value,
            operation_id="event_" + event_type.value.replace(".", "_"),
            summary=f"{event_type.value} (version {version})",
            description=(model.model_fields["data"].annotation.__doc__ or "").strip(),
            tags=["Events"],
        )


def describe_webhook_answers(webhooks: dict[str, Any]) -> None:
    """A receiver acknowledges an event with any 2xx (FastAPI would document a 200 with a JSON
    body and a 422, which are the server's answers, not a receiver's)."""
    for operations in webhooks.values():
        for operation in operations.values():
            operation["responses"] = {
                "2XX": {"description": "Received: any 2xx answer acknowledges the event"}
            }
