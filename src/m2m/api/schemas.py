"""Request and answer bodies of the HTTP API that are not SIM profiles (see ``m2m.profile``)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, BeforeValidator, Field

_WHOLE_NUMBER = re.compile(r"-?[0-9]+")


def _written_with_digits(value: object) -> object:
    if isinstance(value, str) and not _WHOLE_NUMBER.fullmatch(value):
        raise ValueError("must be a whole number, written with digits only")
    return value


# For an integer query parameter, after its Query: ``Annotated[int, Query(ge=0), WholeNumber]``.
# pydantic's lax int also takes "0.0", "1_000" and " 5 ", which a documented integer parameter
# must refuse (422) rather than read as something else. (Nested as ``Annotated[WholeNumber,
# Query(…)]``, FastAPI wrote the Query's bounds into the OpenAPI schema under pydantic's names.)
WholeNumber = BeforeValidator(_written_with_digits)


class ErrorBody(BaseModel):
    """Every error answer: an OAuth2-style code and a human message."""

    error: str = Field(description="Stable machine-readable code, e.g. invalid_token.")
    error_description: str = Field(description="What is wrong, for a human.")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field problems, for invalid_request."
    )


class TokenPublic(BaseModel):
    scope: str
    token_type: str = "Bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int = Field(description="Remaining validity in seconds.")
    access_token: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The answers of these statuses, and 503, which any route touching the database can give."""
    descriptions = {
        400: "Malformed request",
        401: "Missing or invalid credentials",
        403: "Credentials valid but not allowed",
        404: "Not found",
        409: "A request with the same Idempotency-Key is still running; see Retry-After",
        412: "If-Match names another version than the current one; nothing was changed",
        413: "The body is larger than this endpoint accepts (see the deployment guide)",
        415: "The body's Content-Type is not one this endpoint reads",
        422: "A parameter is invalid",
        429: "Too many failed authentications; see Retry-After",
        503: "The database is busy or unavailable; nothing was done. Retry after Retry-After",
    }
    return {s: {"model": ErrorBody, "description": descriptions[s]} for s in (*statuses, 503)}
