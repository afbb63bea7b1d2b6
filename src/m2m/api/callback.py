"""POST /configure/callback (documented) and GET /configure/callback (extension)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from m2m.api.deps import CurrentAccountId, ServicesDep
from m2m.api.schemas import error_responses
from m2m.callbacks.configuration import checked_callback, save_callback
from m2m.callbacks.outbound import ForbiddenTarget, InvalidCallbackUrl
from m2m.callbacks.rules import (
    HEADER_NAME_PATTERN,
    HEADER_VALUE_PATTERN,
    MAX_HEADERS,
    MAX_URL_LENGTH,
    MAX_VALUE_LENGTH,
    URL_PATTERN,
    CallbackConfigError,
    masked,
)
from m2m.errors import BadRequest, Forbidden
from m2m.storage import callback_configs

router = APIRouter()


HeaderName = Annotated[str, StringConstraints(pattern=HEADER_NAME_PATTERN)]
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


class CallbackConfigPublic(BaseModel):
    url: str | None
    headers: dict[str, str] = Field(description="Header names; values are masked.")


@router.post(
    "/configure/callback",
    status_code=204,
    response_class=Response,
    tags=["Callbacks"],
    summary="Set the callback URL and headers",
    responses={204: {"description": "Saved"}, **error_responses(400, 401, 403, 422, 429)},
)
async def configure_callback(
    body: CallbackConfigIn, account_id: CurrentAccountId, services: ServicesDep
) -> Response:
    """Replace the account's callback configuration; waiting messages go out to the new URL."""
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

    await run_in_threadpool(
        save_callback, services.engine, services.clock, account_id, body.url, headers
    )
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
