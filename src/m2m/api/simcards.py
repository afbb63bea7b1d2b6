"""GET /m2m/1.0.0/simcards: a SIM card's profile by MSISDN."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from m2m import access
from m2m.api.deps import PresentedCaller, authorized
from m2m.api.schemas import error_responses
from m2m.errors import NotFound
from m2m.identifiers import MSISDN_PATTERN, normalize_msisdn
from m2m.profile import SimCard, sim_card_document

router = APIRouter(tags=["SIM cards"])


@router.get(
    "/simcards",
    response_model=list[SimCard],
    summary="Read a SIM card's profile",
    responses=error_responses(401, 403, 404, 422, 429),
)
async def get_simcards(
    caller: PresentedCaller,
    msisdn: Annotated[
        str,
        Query(
            description="The SIM's MSISDN, 8 to 15 digits; a leading + is accepted.",
            pattern=MSISDN_PATTERN,
            examples=["32470000001"],
        ),
    ],
) -> Response:
    """The SIM card with this MSISDN, as a one-element array, if it belongs to your account."""
    number = normalize_msisdn(msisdn)
    services = caller.services
    lookup = partial(
        access.find_sim, services.reads, services.clock, caller.token, caller.api_key, number
    )
    sim = authorized(caller, lookup)
    if sim is None:
        # Same answer for "no such SIM" and "another account's SIM": nothing leaks across tenants.
        raise NotFound(f"No SIM card with MSISDN {number} in your account.")
    document = sim_card_document(sim.profile, sim.cost_center, sim.state, sim.imsi)
    return JSONResponse([document])
