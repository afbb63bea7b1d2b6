"""Answers into values: the JSON of a success, the typed exception of an error, models."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from m2m.client.errors import UnexpectedResponse, error_from_answer

M = TypeVar("M", bound=BaseModel)


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as error:
        raise UnexpectedResponse(
            f"HTTP {response.status_code} answer is not JSON: {response.text[:200]!r}"
        ) from error


def answer(response: httpx.Response) -> Any:
    """The decoded JSON of a successful answer; the typed error of any other."""
    if response.is_success:
        return _json(response)
    try:
        body = _json(response)
    except UnexpectedResponse:
        body = None  # a proxy's HTML error page: the status says enough
    raise error_from_answer(
        response.status_code, body, response.reason_phrase, response.headers.get("retry-after")
    )


def parse(model: type[M], data: Any, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise UnexpectedResponse(f"{what}: {error.errors()[0]['msg']}") from error
