"""``/m2m/1.0.0/event-subscriptions`` (extension): an account's subscriptions to its events —
create, list, show, change (JSON Merge Patch), delete, rotate the signing secret, replay.

Bodies are read by hand after the credentials are checked (as ``/configure/callback``), so that
nobody without credentials gets a body parsed; POST and PATCH take an ``Idempotency-Key``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.json_schema import SkipJsonSchema
from starlette.concurrency import run_in_threadpool

from m2m.api.callback import HeaderName, HeaderValue
from m2m.api.deps import Changer, CurrentAccountId, CurrentChanger, ServicesDep
from m2m.api.events import TypePattern
from m2m.api.idempotency import IdempotencyKey, idempotent
from m2m.api.schemas import error_responses
from m2m.callbacks import subscriptions
from m2m.callbacks.outbound import ForbiddenTarget, InvalidCallbackUrl
from m2m.callbacks.rules import (
    MAX_HEADERS,
    MAX_URL_LENGTH,
    URL_PATTERN,
    CallbackConfigError,
    masked,
)
from m2m.errors import BadRequest, Forbidden, NotFound
from m2m.freetext import WITHOUT_CONTROL_CHARACTERS
from m2m.labels import KEY_LENGTH, KEY_PATTERN, MAX_LABELS, VALUE_LENGTH
from m2m.storage import event_subscriptions as subscription_store
from m2m.storage.event_subscriptions import Subscription

M = TypeVar("M", bound=BaseModel)
router = APIRouter(tags=["Event subscriptions"])

PATH = "/event-subscriptions"
ID_PATTERN = r"^sub_[0-9a-f]{24}$"
SubscriptionId = Annotated[
    str, Path(pattern=ID_PATTERN, description="The subscription's id (sub_…).")
]
# What the schema can say of each (so that what it allows is accepted): the log's type filter,
# the labels' key rule, text without control characters.
LabelKey = Annotated[str, StringConstraints(pattern=KEY_PATTERN, max_length=KEY_LENGTH)]
LabelValue = Annotated[
    str, StringConstraints(pattern=WITHOUT_CONTROL_CHARACTERS, max_length=VALUE_LENGTH)
]

Url = Annotated[str, StringConstraints(pattern=URL_PATTERN, max_length=MAX_URL_LENGTH)]
EventTypes = Annotated[
    list[TypePattern], Field(min_length=1, max_length=subscriptions.MAX_TYPE_PATTERNS)
]
Status = Annotated[str, StringConstraints(pattern="^(enabled|paused)$")]
# additionalProperties false beside patternProperties: a name the patterns refuse is not valid.
Headers = Annotated[
    dict[HeaderName, HeaderValue],
    Field(max_length=MAX_HEADERS, json_schema_extra={"additionalProperties": False}),
]
LabelFilter = Annotated[
    dict[LabelKey, LabelValue],
    Field(max_length=MAX_LABELS, json_schema_extra={"additionalProperties": False}),
]

_URL_DESCRIPTION = "Absolute http(s) URL the events are POSTed to (https outside the sandbox)."
_HEADERS_DESCRIPTION = "Authorization and x-* headers sent with every event (the callback's rules)."
_TYPES_DESCRIPTION = (
    "The events wanted: catalog types (`sim.state_changed`), families (`sim.*`) or `*`."
)
_LABELS_DESCRIPTION = (
    "Only events about a SIM with all these labels (an event about no SIM never matches)."
)


class EventSubscriptionCreate(BaseModel):
    model_config = ConfigDict(regex_engine="python-re", extra="forbid")

    url: str = Field(description=_URL_DESCRIPTION, pattern=URL_PATTERN, max_length=MAX_URL_LENGTH)
    headers: Headers = Field(default_factory=dict, description=_HEADERS_DESCRIPTION)
    event_types: list[TypePattern] = Field(
        min_length=1, max_length=subscriptions.MAX_TYPE_PATTERNS, description=_TYPES_DESCRIPTION
    )
    label_filter: LabelFilter = Field(default_factory=dict, description=_LABELS_DESCRIPTION)
    status: str = Field(
        default="enabled",
        pattern="^(enabled|paused)$",
        description="`paused`: events are not sent (nor skipped) until it is enabled again.",
    )


class EventSubscriptionPatch(BaseModel):
    """A JSON Merge Patch: the fields given replace theirs; `null` empties headers or the
    label filter."""

    model_config = ConfigDict(regex_engine="python-re", extra="forbid")

    # url, event_types and status cannot be removed: null is not in their schema (and is a 422
    # naming the field when sent anyway).
    url: Url | SkipJsonSchema[None] = Field(default=None, description=_URL_DESCRIPTION)
    headers: Headers | None = Field(default=None, description=_HEADERS_DESCRIPTION)
    event_types: EventTypes | SkipJsonSchema[None] = Field(
        default=None, description=_TYPES_DESCRIPTION
    )
    label_filter: LabelFilter | None = Field(default=None, description=_LABELS_DESCRIPTION)
    status: Status | SkipJsonSchema[None] = None


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: str = Field(
        description="An RFC 3339 time: the events stored since then (and still kept) are sent "
        "again.",
        examples=["2026-12-01T04:00:00Z"],
        json_schema_extra={"format": "date-time"},
    )


class EndpointHealth(BaseModel):
    state: str = Field(description="`closed` (sending), `open` (waiting until `open_until`).")
    open_until: datetime | None = None
    failures: int = Field(description="Unhealthy attempts in a row.")


class EventSubscriptionPublic(BaseModel):
    id: str
    url: str
    headers: dict[str, str] = Field(description="Header names; values are masked.")
    event_types: list[str]
    label_filter: dict[str, str]
    status: str
    created_at: datetime
    updated_at: datetime
    cursor: str = Field(description="The id of the last event considered for delivery.")
    endpoint: EndpointHealth


class EventSubscriptionWithSecret(EventSubscriptionPublic):
    secret: str = Field(
        description="The Standard Webhooks signing secret (whsec_…): shown only now. Verify "
        "each event's webhook-signature with it."
    )


class EventSubscriptionList(BaseModel):
    subscriptions: list[EventSubscriptionPublic]
    limit: int = Field(description="How many subscriptions an account may have.")


BODY_MODELS = (EventSubscriptionCreate, EventSubscriptionPatch, ReplayRequest)


def _public(subscription: Subscription) -> dict[str, Any]:
    breaker = subscription.breaker
    return EventSubscriptionPublic(
        id=subscription.public_id,
        url=subscription.url,
        headers=masked(subscription.headers),
        event_types=subscription.event_types,
        label_filter=subscription.label_filter,
        status=subscription.status,
        created_at=subscription.created_at,
        updated_at=subscription.updated_at,
        cursor=str(subscription.through_event_id),
        endpoint=EndpointHealth(
            state="closed" if breaker.open_until is None else "open",
            open_until=breaker.open_until,
            failures=breaker.failures,
        ),
    ).model_dump(mode="json")


def _parse(model: type[M], raw: bytes) -> M:
    """The body as ``model``, or the 422 FastAPI would answer. A header's or label's problem is
    located by its field, not its name: the answer does not echo text the caller chose."""
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as error:
        problems = []
        for problem in error.errors(include_url=False, include_input=False):
            loc = problem["loc"]
            if loc[:1] in (("headers",), ("label_filter",)):
                loc = loc[:1]
            elif loc[:1] == ("event_types",) and len(loc) == 2:
                problem = {**problem, "msg": _type_problem(raw, loc[1]) or problem["msg"]}
            problems.append({**problem, "loc": ("body", *loc)})
        raise RequestValidationError(problems) from error


def _type_problem(raw: bytes, index: Any) -> str | None:
    """What is wrong with the ``index``-th event type, naming it (as ``GET /events`` does)."""
    try:
        pattern = json.loads(raw)["event_types"][index]
        if not isinstance(pattern, str):
            return None
        subscriptions.check_event_types([pattern])
    except subscriptions.SubscriptionError as refused:
        return str(refused)
    except (ValueError, RecursionError, LookupError, TypeError):
        return None
    return None


def _refused(error: Exception) -> Exception:
    if isinstance(error, subscriptions.SubscriptionError):
        return BadRequest(f"{error.field}: {error}", code="invalid_subscription")
    if isinstance(error, CallbackConfigError | InvalidCallbackUrl):
        return BadRequest(str(error), code="invalid_subscription")
    if isinstance(error, ForbiddenTarget):
        return Forbidden(str(error), code="callback_target_forbidden")
    return error


def _checked(services: ServicesDep, changes: dict[str, Any], url: str | None) -> dict[str, Any]:
    """The changes with headers, types and labels checked (raises the API's errors)."""
    try:
        if "event_types" in changes:
            changes["event_types"] = subscriptions.check_event_types(changes["event_types"])
        if "label_filter" in changes:
            changes["label_filter"] = subscriptions.check_label_filter(changes["label_filter"])
        if "status" in changes:
            changes["status"] = subscriptions.check_status(changes["status"])
        if url is not None:
            changes["headers"] = subscriptions.check_endpoint(
                url,
                changes.get("headers", {}),
                services.address_policy,
                require_https=not services.settings.sandbox,
            )
    except (
        subscriptions.SubscriptionError,
        CallbackConfigError,
        InvalidCallbackUrl,
        ForbiddenTarget,
    ) as error:
        raise _refused(error) from error
    return changes


def _secret_key(services: ServicesDep) -> str:
    assert services.settings.secret_key is not None
    return services.settings.secret_key.get_secret_value()


def _not_found() -> NotFound:
    return NotFound("No such event subscription in your account.", code="not_found")


@router.post(
    PATH,
    status_code=201,
    response_model=EventSubscriptionWithSecret,
    summary="Subscribe to events (extension)",
    responses=error_responses(401, 403, 409, 413, 422, 429),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/EventSubscriptionCreate"}
                }
            },
            "required": True,
        }
    },
)
async def create_subscription(
    request: Request,
    changer: CurrentChanger,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Subscribe a URL to the account's events from now on; the answer holds the signing
    secret, shown this once. At most 20 subscriptions an account (422
    `too_many_subscriptions` beyond)."""
    raw = await request.body()

    async def work() -> Response:
        body = _parse(EventSubscriptionCreate, raw)
        checked = _checked(services, body.model_dump(), body.url)
        try:
            made = await run_in_threadpool(
                partial(
                    subscriptions.create_subscription,
                    services.engine,
                    services.clock,
                    _secret_key(services),
                    changer.account_id,
                    url=body.url,
                    headers=checked["headers"],
                    event_types=checked["event_types"],
                    label_filter=checked["label_filter"],
                    status=checked["status"],
                    actor=changer.actor,
                )
            )
        except subscription_store.TooManySubscriptions:
            raise BadRequest(
                f"An account has at most {subscription_store.MAX_PER_ACCOUNT} event"
                " subscriptions; delete one first.",
                code="too_many_subscriptions",
            ) from None
        answer = {**_public(made.subscription), "secret": made.secret}
        location = f"{request.url.path}/{made.subscription.public_id}"
        return JSONResponse(answer, status_code=201, headers={"Location": location})

    return await idempotent(request, services, changer.account_id, idempotency_key, raw, work)


@router.get(
    PATH,
    response_model=EventSubscriptionList,
    summary="List the account's event subscriptions (extension)",
    responses=error_responses(401, 403, 429),
)
async def list_subscriptions(account_id: CurrentAccountId, services: ServicesDep) -> Any:
    """Every subscription of the account, oldest first (header values masked, no secret)."""

    def load() -> list[Subscription]:
        with services.engine.connect() as conn:
            return subscription_store.list_for_account(conn, account_id)

    found = await run_in_threadpool(load)
    return {
        "subscriptions": [_public(s) for s in found],
        "limit": subscription_store.MAX_PER_ACCOUNT,
    }


@router.get(
    PATH + "/{subscription_id}",
    response_model=EventSubscriptionPublic,
    summary="Show an event subscription (extension)",
    responses=error_responses(401, 403, 404, 422, 429),
)
async def show_subscription(
    subscription_id: SubscriptionId, account_id: CurrentAccountId, services: ServicesDep
) -> Any:
    """One subscription of the account, with its endpoint's health."""

    def load() -> Subscription | None:
        with services.engine.connect() as conn:
            return subscription_store.get(conn, account_id, subscription_id)

    found = await run_in_threadpool(load)
    if found is None:
        raise _not_found()
    return _public(found)


@router.patch(
    PATH + "/{subscription_id}",
    response_model=EventSubscriptionPublic,
    summary="Change an event subscription (extension)",
    responses=error_responses(401, 403, 404, 409, 413, 422, 429),
    openapi_extra={
        "requestBody": {
            "content": {
                media: {"schema": {"$ref": "#/components/schemas/EventSubscriptionPatch"}}
                for media in ("application/merge-patch+json", "application/json")
            },
            "required": True,
        }
    },
)
async def change_subscription(
    subscription_id: SubscriptionId,
    request: Request,
    changer: CurrentChanger,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A JSON Merge Patch of url, headers, event_types, label_filter and status. Resuming a
    paused subscription sends the events stored meanwhile (while they are kept)."""
    raw = await request.body()

    async def work() -> Response:
        return await _change(
            subscription_id, _parse(EventSubscriptionPatch, raw), changer, services
        )

    return await idempotent(request, services, changer.account_id, idempotency_key, raw, work)


async def _change(
    public_id: str, body: EventSubscriptionPatch, changer: Changer, services: ServicesDep
) -> Response:
    given = body.model_dump(exclude_unset=True)
    for name in ("url", "event_types", "status"):
        if name in given and given[name] is None:
            raise BadRequest(f"{name}: cannot be removed (null)", code="invalid_subscription")
    for name in ("headers", "label_filter"):
        if name in given and given[name] is None:
            given[name] = {}

    def current() -> Subscription | None:
        with services.engine.connect() as conn:
            return subscription_store.get(conn, changer.account_id, public_id)

    before = await run_in_threadpool(current)
    if before is None:
        raise _not_found()
    url = given.get("url")
    if url is None and "headers" in given:
        url = before.url  # new headers are checked with the URL they go to
    elif url is not None and "headers" not in given:
        given["headers"] = before.headers
    changes = _checked(services, given, url)
    after = await run_in_threadpool(
        partial(
            subscriptions.change_subscription,
            services.engine,
            services.clock,
            changer.account_id,
            public_id,
            changes,
            actor=changer.actor,
        )
    )
    if after is None:
        raise _not_found()
    services.notify_work()
    return JSONResponse(_public(after))


@router.delete(
    PATH + "/{subscription_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an event subscription (extension)",
    responses={204: {"description": "Deleted"}, **error_responses(401, 403, 404, 422, 429)},
)
async def delete_subscription(
    subscription_id: SubscriptionId, changer: CurrentChanger, services: ServicesDep
) -> Response:
    """Delete the subscription; its events waiting to be sent are dropped."""
    deleted = await run_in_threadpool(
        partial(
            subscriptions.delete_subscription,
            services.engine,
            services.clock,
            changer.account_id,
            subscription_id,
            actor=changer.actor,
        )
    )
    if not deleted:
        raise _not_found()
    return Response(status_code=204)


@router.post(
    PATH + "/{subscription_id}/rotate-secret",
    response_model=EventSubscriptionWithSecret,
    summary="Rotate an event subscription's signing secret (extension)",
    responses=error_responses(401, 403, 404, 409, 422, 429),
)
async def rotate_secret(
    subscription_id: SubscriptionId,
    request: Request,
    changer: CurrentChanger,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A new signing secret, shown this once. For the overlap after a rotation (24 hours by
    default) each event carries both the new and the previous secret's signatures."""

    async def work() -> Response:
        made = await run_in_threadpool(
            partial(
                subscriptions.rotate_secret,
                services.engine,
                services.clock,
                _secret_key(services),
                changer.account_id,
                subscription_id,
                actor=changer.actor,
            )
        )
        if made is None:
            raise _not_found()
        return JSONResponse({**_public(made.subscription), "secret": made.secret})

    return await idempotent(request, services, changer.account_id, idempotency_key, b"", work)


def _since(raw: str) -> datetime:
    """An RFC 3339 time, in UTC (a time without an offset is UTC). A leap second reads as the
    second before it; a time past what UTC can hold, as the first or last time there is."""
    try:
        if len(raw) < 16 or raw[10] not in "Tt ":
            raise ValueError(raw)
        text = raw.upper()
        if text[17:19] == "60":
            text = text[:17] + "59" + text[19:]
        value = datetime.fromisoformat(text)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            return (datetime.min if value.year < 2 else datetime.max).replace(tzinfo=UTC)
    except ValueError:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "since"),
                    "msg": "an RFC 3339 date and time, e.g. 2026-12-01T04:00:00Z",
                }
            ]
        ) from None


@router.post(
    PATH + "/{subscription_id}/replay",
    response_model=EventSubscriptionPublic,
    summary="Send a subscription's events since a time again (extension)",
    responses=error_responses(401, 403, 404, 409, 422, 429),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ReplayRequest"}}
            },
            "required": True,
        }
    },
)
async def replay(
    subscription_id: SubscriptionId,
    request: Request,
    changer: CurrentChanger,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Queue again the account's events stored since `since` that the subscription selects (as
    far back as they are kept), for a receiver that was down past the retry schedule. At least
    once: events it had already received come again with the same webhook-id."""
    raw = await request.body()

    async def work() -> Response:
        since = _since(_parse(ReplayRequest, raw).since)
        after = await run_in_threadpool(
            partial(
                subscriptions.replay,
                services.engine,
                services.clock,
                changer.account_id,
                subscription_id,
                since,
                actor=changer.actor,
            )
        )
        if after is None:
            raise _not_found()
        services.notify_work()
        return JSONResponse(_public(after))

    return await idempotent(request, services, changer.account_id, idempotency_key, raw, work)
