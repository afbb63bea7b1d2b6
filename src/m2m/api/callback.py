"""POST /configure/callback (documented) and GET /configure/callback (extension)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.concurrency import run_in_threadpool

from m2m.api.deps import Changer, CurrentAccountId, CurrentChanger, ServicesDep
from m2m.api.idempotency import IdempotencyKey, idempotent
from m2m.api.schemas import error_responses
from m2m.callbacks.configuration import checked_callback, save_callback
from m2m.callbacks.outbound import ForbiddenTarget, InvalidCallbackUrl
from m2m.callbacks.rules import (
    HEADER_NAME_PATTERN,
    HEADER_VALUE_PATTERN,
    MAX_HEADERS,
    MAX_NAME_LENGTH,
    MAX_URL_LENGTH,
    MAX_VALUE_LENGTH,
    URL_PATTERN,
    CallbackConfigError,
    masked,
)
from m2m.errors import BadRequest, Forbidden
from m2m.storage import callback_configs

router = APIRouter()


HeaderName = Annotated[
    str, StringConstraints(pattern=HEADER_NAME_PATTERN, max_length=MAX_NAME_LENGTH)
]
HeaderValue = Annotated[
    str, StringConstraints(pattern=HEADER_VALUE_PATTERN, max_length=MAX_VALUE_LENGTH)
]


class CallbackConfigIn(BaseModel):
    model_config = ConfigDict(regex_engine="python-re")  # the name pattern uses a lookahead

    url: str = Field(
        description="Absolute http(s) URL that receives status messages (https outside the "
        "sandbox).",
        pattern=URL_PATTERN,
        max_length=MAX_URL_LENGTH,
    )
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict,
        max_length=MAX_HEADERS,
        description="Authorization and x-* headers (not x-callback-token) sent with every message.",
        json_schema_extra={"additionalProperties": False},
    )


# The largest body a valid configuration can need: every string at its longest, each character
# written as a \uXXXX escape (as json.dumps writes non-ASCII), and room for the JSON around them.
MAX_BODY_BYTES = 6 * (MAX_URL_LENGTH + MAX_HEADERS * (MAX_NAME_LENGTH + MAX_VALUE_LENGTH)) + 4096


# Documented in the OpenAPI document's components (see ``m2m.api.app``), as FastAPI would have.
BODY_MODELS = (CallbackConfigIn,)


def _header_positions(raw: bytes) -> dict[str, int]:
    try:
        headers = json.loads(raw).get("headers")
    except (ValueError, RecursionError, AttributeError):
        return {}
    return {name: index for index, name in enumerate(headers)} if isinstance(headers, dict) else {}


def _read_config(raw: bytes) -> CallbackConfigIn:
    """The body as a configuration, or the 422 FastAPI would have answered for it.

    A problem with a header is located by the header's position (``body.headers[2]``), not its
    name: the answer does not echo text the caller chose."""
    try:
        return CallbackConfigIn.model_validate_json(raw)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_input=False)
        positions = (
            _header_positions(raw) if any(p["loc"][:1] == ("headers",) for p in problems) else {}
        )
        located: list[dict[str, Any]] = []
        for problem in problems:
            loc: tuple[str | int, ...] = problem["loc"]
            if loc[:1] == ("headers",) and len(loc) > 1:
                where = f"headers[{positions.get(str(loc[1]), '?')}]"
                loc = (where, "name") if loc[2:] == ("[key]",) else (where,)
            located.append({**problem, "loc": ("body", *loc)})
        raise RequestValidationError(located) from error


class CallbackConfigPublic(BaseModel):
    url: str | None
    headers: dict[str, str] = Field(description="Header names; values are masked.")


@router.post(
    "/configure/callback",
    status_code=204,
    response_class=Response,
    tags=["Callbacks"],
    summary="Set the callback URL and headers",
    responses={
        204: {"description": "Saved"},
        **error_responses(400, 401, 403, 409, 413, 422, 429),
    },
    # The body is read by hand, after the credentials are checked: a body parameter would be
    # read and parsed before any dependency runs, for anyone. This is what FastAPI writes for it.
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/CallbackConfigIn"}}
            },
            "required": True,
        }
    },
)
async def configure_callback(
    request: Request,
    changer: CurrentChanger,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Replace the account's callback configuration; waiting messages go out to the new URL."""
    raw = await request.body()

    async def work() -> Response:
        return await _configure(_read_config(raw), changer, services)

    return await idempotent(request, services, changer.account_id, idempotency_key, raw, work)


async def _configure(body: CallbackConfigIn, changer: Changer, services: ServicesDep) -> Response:
    try:
        headers = checked_callback(
            body.url,
            body.headers,
            services.address_policy,
            require_https=not services.settings.sandbox,
        )
    except (CallbackConfigError, InvalidCallbackUrl) as error:
        raise BadRequest(str(error), code="invalid_callback") from error
    except ForbiddenTarget as error:
        # Well-formed, but the server will not call it: a policy refusal, not a malformed request.
        raise Forbidden(str(error), code="callback_target_forbidden") from error

    def save() -> None:
        # Who, asked only now that the change is made (a replay or a refusal never asks).
        with services.engine.connect() as conn:
            actor = changer.actor(conn)
        save_callback(
            services.engine, services.clock, changer.account_id, body.url, headers, actor=actor
        )

    await run_in_threadpool(save)
    services.notify_work()
    return Response(status_code=204)


@router.get(
    "/configure/callback",
    response_model=CallbackConfigPublic,
    tags=["Callbacks"],
    summary="Show the callback configuration (extension)",
    responses=error_responses(401, 403, 429),
)
async def show_callback(
    account_id: CurrentAccountId, services: ServicesDep
) -> CallbackConfigPublic:
    """The current callback URL and header names, with header values masked."""

    def load() -> callback_configs.CallbackConfig | None:
        with services.engine.connect() as conn:
            return callback_configs.get_callback_config(conn, account_id)

    config = await run_in_threadpool(load)
    if config is None:
        return CallbackConfigPublic(url=None, headers={})
    return CallbackConfigPublic(url=config.url, headers=masked(config.headers))
