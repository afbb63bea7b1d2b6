"""GET /m2m/1.0.0/simcards: a SIM card's profile by MSISDN.

This is the API's hot path, so the route reads its two inputs itself (the credentials with the
same security schemes, the ``msisdn`` with the same pattern and the same 422 answers) instead of
declaring them for FastAPI to solve: that solving was a quarter of the route's CPU time. The
OpenAPI document describes the parameter and the security exactly as before.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from m2m import access
from m2m.api.deps import CALLER_SECURITY, authorized, caller_of
from m2m.api.schemas import error_responses
from m2m.errors import NotFound
from m2m.identifiers import MSISDN_PATTERN, normalize_msisdn
from m2m.profile import SimCard, sim_card_document

router = APIRouter(tags=["SIM cards"])

_MSISDN_DESCRIPTION = "The SIM's MSISDN, 8 to 15 digits; a leading + is accepted."
MSISDN_PARAMETER = {
    "name": "msisdn",
    "in": "query",
    "required": True,
    "schema": {
        "type": "string",
        "pattern": MSISDN_PATTERN,
        "description": _MSISDN_DESCRIPTION,
        "examples": ["32470000001"],
        "title": "Msisdn",
    },
    "description": _MSISDN_DESCRIPTION,
}
_MSISDN = re.compile(MSISDN_PATTERN)


def msisdn_param(request: Request) -> str:
    """The ``msisdn`` query parameter, or the validation error FastAPI would have raised."""
    value = request.query_params.get("msisdn")
    location = ("query", "msisdn")
    if value is not None and value.startswith(" "):
        # A "+" typed unescaped in a query string arrives as a space (form encoding).
        value = "+" + value[1:]
    error: dict[str, Any]
    if value is None:
        error = {"type": "missing", "loc": location, "msg": "Field required", "input": None}
        raise RequestValidationError([error])
    if not _MSISDN.fullmatch(value):
        error = {
            "type": "string_pattern_mismatch",
            "loc": location,
            "msg": f"String should match pattern '{MSISDN_PATTERN}'",
            "input": value,
            "ctx": {"pattern": MSISDN_PATTERN},
        }
        raise RequestValidationError([error])
    return value


@router.get(
    "/simcards",
    response_model=list[SimCard],
    summary="Read a SIM card's profile",
    responses=error_responses(401, 403, 404, 422, 429),
    openapi_extra={"parameters": [MSISDN_PARAMETER], "security": CALLER_SECURITY},
)
async def get_simcards(request: Request) -> Response:
    """The SIM card with this MSISDN, as a one-element array, if it belongs to your account."""
    caller = await caller_of(request)
    number = normalize_msisdn(msisdn_param(request))
    services = caller.services
    lookup = partial(
        access.find_sim, services.reads, services.clock, caller.token, caller.api_key, number
    )
    sim = await authorized(caller, lookup)
    if sim is None:
        # Same answer for "no such SIM" and "another account's SIM": nothing leaks across tenants.
        raise NotFound(f"No SIM card with MSISDN {number} in your account.")
    document = sim_card_document(sim.profile, sim.cost_center, sim.state, sim.imsi)
    return JSONResponse([document])
