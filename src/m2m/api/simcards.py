"""GET /m2m/1.0.0/simcards: a SIM card's profile by MSISDN (documented), by ICCID or IMSI, or a
filtered, keyset-paged list of the caller's SIMs (extensions). ``sim_updates`` updates one.

The documented ``?msisdn=`` call is the API's hot path, so the route reads its two inputs itself
(the credentials with the same security schemes, the ``msisdn`` with the same pattern and the
same 422 answers) instead of declaring them for FastAPI to solve: that solving was a quarter of
the route's CPU time. Any other query goes to ``m2m.sim_query`` (parsing, the cursor) and
``m2m.inventory`` (the reads); the OpenAPI document describes every parameter.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from m2m import access, inventory, sim_query
from m2m.api.deps import CALLER_SECURITY, Caller, authorized, caller_of, current_account_id
from m2m.api.error_handlers import query_problem
from m2m.api.schemas import error_responses
from m2m.api.simcards_openapi import LIST_PARAMETERS, LIST_RESPONSE_HEADERS
from m2m.errors import (
    NotFound,
)
from m2m.identifiers import MSISDN_PATTERN, normalize_msisdn
from m2m.paging import next_link
from m2m.profile import (
    SimCard,
    sim_card_document,
)

router = APIRouter(tags=["SIM cards"])

_MSISDN_DESCRIPTION = (
    "The SIM's MSISDN, 8 to 15 digits; a leading + is accepted. Reads that one SIM (the"
    " documented call); without msisdn, iccid or imsi, the answer is a list of your SIMs."
)
MSISDN_PARAMETER = {
    "name": "msisdn",
    "in": "query",
    # Required by the documentation's call; without it (and without iccid or imsi) the
    # caller's SIMs are listed.
    "required": False,
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


_LISTED = "A list of your SIMs, or the one SIM an identifier names, as a JSON array."
_LIST_DESCRIPTION = (
    "The SIM card with this MSISDN (or ICCID, or IMSI), as a one-element array, if it belongs to"
    " your account. Without one of those, a page of your SIMs in a stable order, filtered by"
    ' every filter given; the next page\'s URL is in the Link header (rel="next"), absent on'
    " the last page. Unknown parameters are refused (422), so a misspelt filter never lists"
    " everything."
)


@router.get(
    "/simcards",
    response_model=list[SimCard],
    summary="Read a SIM card's profile, or list your SIM cards",
    description=_LIST_DESCRIPTION,
    responses={
        200: {"description": _LISTED, "headers": LIST_RESPONSE_HEADERS},
        **error_responses(401, 403, 404, 422, 429),
    },
    openapi_extra={
        "parameters": [MSISDN_PARAMETER, *LIST_PARAMETERS],
        "security": CALLER_SECURITY,
    },
)
async def get_simcards(request: Request) -> Response:
    caller = await caller_of(request)
    params = request.query_params
    if len(params) != 1 or "msisdn" not in params:
        return await _search(request, caller)
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


async def _search(request: Request, caller: Caller) -> Response:
    """Any query but the documented one: read one SIM by ICCID or IMSI, or list."""
    account_id = await current_account_id(caller)  # credentials before inputs, as everywhere
    try:
        query = sim_query.parse(request.query_params.multi_items())
    except sim_query.QueryProblem as problem:
        raise query_problem(problem.parameter, problem.message) from None
    engine = caller.services.engine
    if isinstance(query, sim_query.Lookup):
        found = await run_in_threadpool(inventory.read_sim, engine, account_id, query)
        if found is None:
            name = query.column.upper()
            raise NotFound(f"No SIM card with {name} {query.value} in your account.")
        return Response(found, media_type="application/json")
    page_reads = caller.services.page_reads
    page = await run_in_threadpool(page_reads.run, inventory.list_page, engine, account_id, query)
    headers = {}
    if page.next_cursor is not None:
        headers["Link"] = next_link(str(request.url), page.next_cursor)
    if page.total is not None:
        headers["X-Total-Count"] = str(page.total)
    return Response(page.body, media_type="application/json", headers=headers)
