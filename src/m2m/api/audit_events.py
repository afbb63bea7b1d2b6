"""GET /m2m/1.0.0/audit-events (extension): the caller's account's audit trail, newest first,
filtered and keyset-paged (``m2m.paging``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from m2m.api.deps import CurrentAccountId, ServicesDep
from m2m.api.error_handlers import check_parameter_names, query_problem
from m2m.api.schemas import WholeNumber, error_responses
from m2m.audit import ACTIONS
from m2m.paging import InvalidCursor, decode_cursor, encode_cursor, next_link
from m2m.storage import audit as audit_store

router = APIRouter(tags=["Audit trail"])

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_FILTER_LENGTH = 320  # the longest recorded name (an email)
MAX_ACTIONS = 20
PARAMETERS = ("sim", "actor", "action", "since", "until", "limit", "cursor")
_ACTION_LIST = "\n".join(f"- `{name}`: {meaning}" for name, meaning in ACTIONS.items())
DESCRIPTION = f"""\
Every change to the account's SIMs, callback configuration, credentials and account, from the
API, the console or the operator's admin CLI, newest first. Each event says when, who (`actor`:
an OAuth2 application by its client_id, a permanent token by its name, a console user by their
email, or the admin CLI), what (`action`, the thing changed as `subject`, and each changed field
`before`/`after` in `changes`; never a secret: header values are redacted, credentials are named
by their hint, client_id or name), and the `X-Request-ID` the change was sent with.

The next page, when there is one, is in the `Link: <…>; rel="next"` header: follow it as it is.
Events older than the operator's retention period are deleted.

Actions:

{_ACTION_LIST}
"""


class ActorPublic(BaseModel):
    kind: str = Field(description="application, token, console, admin or system")
    name: str = Field(description="A client_id, a permanent token's name, an email, admin CLI")


class SubjectPublic(BaseModel):
    kind: str = Field(description="sim, request, callback, api_key, application, token, …")
    id: str = Field(description="An ICCID, a TrackingNumber, a client_id, a key's hint, …")


class AuditEventPublic(BaseModel):
    id: int
    occurred_at: datetime
    actor: ActorPublic
    action: str
    subject: SubjectPublic
    changes: dict[str, Any] = Field(description='{"field": {"before": …, "after": …}, …}')
    request_id: str | None


REPEATABLE = ("action",)


def _time(name: str, raw: str | None) -> datetime | None:
    """An ISO 8601 date and time (a time without an offset is UTC). Parsed here, not by
    pydantic, which also takes a number as seconds since 1970: ``until=0.5`` is a mistake."""
    if raw is None:
        return None
    try:
        if len(raw) < 16 or raw[10] not in "Tt ":
            raise ValueError(raw)
        value = datetime.fromisoformat(raw.upper())  # RFC 3339 allows a lowercase t and z
    except ValueError:
        raise query_problem(
            name, "an ISO 8601 date and time, e.g. 2026-12-01T04:00:00Z", raw
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _actions(values: list[str]) -> tuple[str, ...]:
    if len(values) > MAX_ACTIONS:
        raise query_problem("action", f"at most {MAX_ACTIONS} actions")
    for value in values:
        if not value or len(value) > 64 or not all(c.isalnum() or c in "._" for c in value):
            raise query_problem(
                "action", "an action (sim.updated) or a prefix ending in . (sim.)", value
            )
    return tuple(values)


def public(event: audit_store.AuditEvent) -> dict[str, Any]:
    return AuditEventPublic(
        id=event.id,
        occurred_at=event.occurred_at,
        actor=ActorPublic(kind=event.actor_kind, name=event.actor),
        action=event.action,
        subject=SubjectPublic(kind=event.subject_kind, id=event.subject),
        changes=event.changes,
        request_id=event.request_id,
    ).model_dump(mode="json")


@router.get(
    "/audit-events",
    response_model=list[AuditEventPublic],
    summary="List the account's audit trail (extension)",
    description=DESCRIPTION,
    responses={
        200: {
            "description": "The events of this page, newest first",
            "headers": {
                "Link": {
                    "description": 'The next page: <url>; rel="next" (absent on the last page)',
                    "schema": {"type": "string"},
                }
            },
        },
        **error_responses(401, 403, 422, 429),
    },
)
async def audit_events(
    request: Request,
    account_id: CurrentAccountId,
    services: ServicesDep,
    sim: Annotated[
        str | None,
        Query(description="Only the events of this SIM (its ICCID).", pattern=r"^[0-9]{18,22}$"),
    ] = None,
    actor: Annotated[
        str | None,
        Query(
            description="Only the events of this actor, as named: a client_id, a permanent "
            "token's name, a console user's email, or admin CLI.",
            min_length=1,
            max_length=MAX_FILTER_LENGTH,
        ),
    ] = None,
    action: Annotated[
        list[str] | None,
        Query(
            description="Only these actions (repeatable); one ending in a dot is a prefix "
            "(`request.` selects every lifecycle request).",
        ),
    ] = None,
    since: Annotated[
        str | None,
        Query(
            description="Only events at or after this time (ISO 8601 date and time; UTC without "
            "an offset).",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(
            description="Only events before this time (ISO 8601 date and time; UTC without an "
            "offset).",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Events per page (at most 1000)."), WholeNumber
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            description="Where the page starts: from the previous page's Link header.",
            max_length=200,
        ),
    ] = None,
) -> JSONResponse:
    """The account's audit trail, newest first; the next page is in the Link header."""
    check_parameter_names(request, PARAMETERS, REPEATABLE)
    before_id: int | None = None
    if cursor is not None:
        try:
            before_id = decode_cursor(cursor, "id")["id"]
        except InvalidCursor as error:
            raise query_problem("cursor", str(error), cursor) from error
        if (
            not isinstance(before_id, int)
            or isinstance(before_id, bool)
            or not 0 < before_id < 2**63
        ):
            raise query_problem("cursor", "not a cursor this server gave", cursor)
    wanted = audit_store.AuditFilter(
        subject_kind="sim" if sim is not None else None,
        subject=sim,
        actor=actor,
        actions=_actions(action or []),
        since=_time("since", since),
        until=_time("until", until),
    )

    def load() -> list[audit_store.AuditEvent]:
        with services.engine.connect() as conn:
            # One more than asked for: whether a next page exists, without counting.
            return audit_store.list_events(
                conn, account_id, wanted, before_id=before_id, limit=limit + 1
            )

    events = await run_in_threadpool(services.page_reads.run, load)
    headers = {}
    if len(events) > limit:
        events = events[:limit]
        headers["Link"] = next_link(str(request.url), encode_cursor({"id": events[-1].id}))
    return JSONResponse([public(e) for e in events], headers=headers)
