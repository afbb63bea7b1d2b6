"""The sandbox's control API, ``/sandbox/…``: move the clock, inject network faults, read what
was sent, reset to the demo state, load a scenario. ``create_api`` includes it only in sandbox
mode: outside it these paths do not exist (404, and absent from the OpenAPI document).

**No credentials, loopback only.** The sandbox's credentials are public (README, banner), so
asking for them would protect nothing; what does matter is that a sandbox shared on a network
(``--host 0.0.0.0`` for a demo) cannot be reset or have its clock moved by anyone who reaches it,
under the feet of its other users. So the control API answers callers on loopback — a test suite
beside the server — and refuses others with 403 ``sandbox_control_forbidden``, unless
``M2M_SANDBOX_CONTROL_FROM_ANYWHERE`` says otherwise (a test suite in another container).
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictStr,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from starlette.concurrency import run_in_threadpool

from m2m.api.deps import ServicesDep, client_address
from m2m.api.schemas import WholeNumber, error_responses
from m2m.callbacks.sent import SentMessage
from m2m.clock import parse_duration
from m2m.errors import BadRequest, Forbidden
from m2m.network_faults import Fault, FaultKind, SandboxFault
from m2m.sandbox_controls import SandboxControls
from m2m.scenario import Scenario, ScenarioError, checked
from m2m.services import services_of

TAG = "Sandbox control"
MAX_ADVANCE_SECONDS = 10 * 365 * 86400  # ten years at a time: enough for any expiry
# The sandbox's time stays within these: far from datetime's limits (year 9999), which a token's
# expiry or a retry schedule computed from it would otherwise overflow.
MAX_FAULTS = 1000
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


async def controls(request: Request) -> SandboxControls:
    """The sandbox's controls, for a caller allowed to use them."""
    services = services_of(request)
    assert services.sandbox is not None  # the router is only included in sandbox mode
    if not services.settings.sandbox_control_from_anywhere and not _is_loopback(
        client_address(request)
    ):
        raise Forbidden(
            "The sandbox's control API answers only callers on loopback; set "
            "M2M_SANDBOX_CONTROL_FROM_ANYWHERE=true to open it to others.",
            code="sandbox_control_forbidden",
        )
    return services.sandbox


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:  # a dual-stack socket's
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


Controls = Annotated[SandboxControls, Depends(controls)]
router = APIRouter(prefix="/sandbox", tags=[TAG], responses=error_responses(403))


# --- the clock ------------------------------------------------------------------------------


class SandboxClockPublic(BaseModel):
    now: datetime = Field(description="The sandbox's current time (RFC 3339, UTC).")
    offset_seconds: float = Field(description="How far the sandbox's time is from real time.")
    realtime: bool = Field(description="True when the sandbox follows real time (no offset).")


class SandboxClockChange(BaseModel):
    """Exactly one of ``advance``, ``set`` and ``realtime``."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"minProperties": 1, "maxProperties": 1}
    )

    advance: StrictStr | StrictFloat | SkipJsonSchema[None] = Field(
        default=None,
        description='Move forward by a duration: "90s", "15m", "1h", "31d", "2w", "1d12h" '
        "(an optional leading +), or a number of seconds.",
        examples=["1h", "31d", 3600],
    )
    set: AwareDatetime | SkipJsonSchema[None] = Field(
        default=None, description="Jump to this moment (RFC 3339 with an offset)."
    )
    realtime: Literal[True] | SkipJsonSchema[None] = Field(
        default=None, description="Follow real time again (drop the offset)."
    )

    @model_validator(mode="after")
    def _one_change(self) -> SandboxClockChange:
        given = self.model_fields_set
        if len(given) != 1:
            raise ValueError("give exactly one of advance, set and realtime")
        (name,) = given
        if getattr(self, name) is None:
            raise ValueError(f"{name} must not be null")
        return self


def _clock_answer(sandbox: SandboxControls) -> SandboxClockPublic:
    offset = sandbox.clock.offset.total_seconds()
    return SandboxClockPublic(now=sandbox.clock.now(), offset_seconds=offset, realtime=offset == 0)


def _seconds(advance: str | float) -> float:
    seconds = advance if isinstance(advance, float) else parse_duration(advance)
    if seconds is None:
        raise BadRequest(
            f'advance: {advance!r} is not a duration (say "90s", "15m", "1h", "31d", "2w", '
            "or a number of seconds)"
        )
    if not 0 <= seconds <= MAX_ADVANCE_SECONDS:
        raise BadRequest(
            f"advance: {seconds:g} s is out of range (0 to {MAX_ADVANCE_SECONDS} s; the clock "
            'does not go back, use "set" for that)'
        )
    return float(seconds)


def _check_within(field: str, moment: datetime) -> None:
    if not EARLIEST <= moment < LATEST:
        raise BadRequest(
            f"{field}: the sandbox's time must stay from {EARLIEST.isoformat()} to before "
            f"{LATEST.isoformat()}"
        )


@router.get("/clock", responses=error_responses())
async def sandbox_clock(sandbox: Controls) -> SandboxClockPublic:
    """The sandbox's time (what token expiry, retries and timestamps follow)."""
    return _clock_answer(sandbox)


@router.post("/clock", responses=error_responses(400, 422))
async def move_sandbox_clock(
    change: SandboxClockChange, sandbox: Controls, services: ServicesDep
) -> SandboxClockPublic:
    """Advance the sandbox's clock, set it, or put it back on real time."""
    if change.advance is not None:
        seconds = _seconds(change.advance)
        _check_within("advance", sandbox.clock.now() + timedelta(seconds=seconds))
        sandbox.clock.advance(seconds)
    elif change.set is not None:
        _check_within("set", change.set)
        sandbox.clock.set(change.set)
    else:
        sandbox.clock.realtime()
    services.wake_worker()  # retries and breaker waits may have come due
    return _clock_answer(sandbox)


# --- faults ---------------------------------------------------------------------------------


class SandboxFaultPublic(BaseModel):
    identifier: str
    operation: str
    kind: FaultKind
    message: str | None
    latency_ms: int
    count: int | None = Field(description="Operations it still applies to; null: until cleared.")


def _fault_answer(fault: Fault) -> SandboxFaultPublic:
    return SandboxFaultPublic(
        identifier=fault.identifier,
        operation=fault.operation,
        kind=fault.kind,
        message=fault.message,
        latency_ms=fault.latency_ms,
        count=fault.count,
    )


@router.post("/faults", status_code=201, responses=error_responses(400, 422))
async def add_sandbox_fault(body: SandboxFault, sandbox: Controls) -> SandboxFaultPublic:
    """Make operations on a SIM fail, time out or slow down (checked before the simulator)."""
    fault = body.fault()
    if len(sandbox.faults.all()) >= MAX_FAULTS:
        raise BadRequest(f"at most {MAX_FAULTS} faults at once; DELETE /sandbox/faults first")
    sandbox.faults.add(fault)
    return _fault_answer(fault)


@router.get("/faults", responses=error_responses())
async def sandbox_faults(sandbox: Controls) -> list[SandboxFaultPublic]:
    """The faults in force, in the order they were set (the first that applies wins)."""
    return [_fault_answer(fault) for fault in sandbox.faults.all()]


@router.delete("/faults", status_code=204, responses=error_responses())
async def clear_sandbox_faults(sandbox: Controls) -> Response:
    """Clear every fault."""
    sandbox.faults.clear()
    return Response(status_code=204)


# --- what was sent --------------------------------------------------------------------------


class SandboxDelivery(BaseModel):
    sequence: int = Field(description="This message's place in the log; the `after` cursor.")
    kind: Literal["callback", "event"]
    tracking_number: str | None = Field(description="A callback's TrackingNumber.")
    attempted_at: datetime
    url: str | None
    headers: dict[str, str] = Field(description="The request's headers, as sent.")
    body: Any = Field(description="The JSON document sent.")
    status_code: int | None = Field(description="The receiver's answer; null when none came.")
    error: str | None = Field(description="Why the attempt failed, if it did.")
    delivered: bool


class SandboxDeliveriesPage(BaseModel):
    deliveries: list[SandboxDelivery]
    cursor: int = Field(description="Pass as `after` to read only what is sent next.")


def _sent_answer(message: SentMessage) -> SandboxDelivery:
    return SandboxDelivery(
        sequence=message.sequence,
        kind=message.kind,
        tracking_number=message.reference if message.kind == "callback" else None,
        attempted_at=message.attempted_at,
        url=message.url,
        headers=dict(message.headers),
        body=message.body,
        status_code=message.status_code,
        error=message.error,
        delivered=message.delivered,
    )


@router.get("/deliveries", responses=error_responses(422))
async def sandbox_deliveries(
    sandbox: Controls,
    tracking_number: Annotated[
        str | None, Query(max_length=64, description="Only this request's callbacks.")
    ] = None,
    after: Annotated[
        int,
        Query(ge=0, description="Only what was sent after this `sequence` (a cursor)."),
        WholeNumber,
    ] = 0,
) -> SandboxDeliveriesPage:
    """Every callback attempt since the last reset: URL, headers, body and the answer."""
    messages = sandbox.sent.read(reference=tracking_number, after=after)
    return SandboxDeliveriesPage(
        deliveries=[_sent_answer(m) for m in messages],
        cursor=messages[-1].sequence if messages else after,
    )


# --- reset ----------------------------------------------------------------------------------


@router.post("/reset", status_code=204, responses=error_responses())
async def reset_sandbox(sandbox: Controls) -> Response:
    """Back to the documented demo state: data, credentials, clock, faults, what was sent."""
    await run_in_threadpool(sandbox.reset)
    return Response(status_code=204)


# --- scenarios ------------------------------------------------------------------------------


@router.post("/scenario", status_code=204, responses=error_responses(400, 413, 422))
async def load_sandbox_scenario(
    body: Scenario, sandbox: Controls, services: ServicesDep
) -> Response:
    """Reset, then add the scenario's SIMs, accounts, callback configuration and faults."""

    def load() -> None:
        try:
            scenario = checked(body, services.address_policy)
        except ScenarioError as error:
            raise BadRequest(str(error)) from None
        sandbox.reset(scenario)

    await run_in_threadpool(load)
    return Response(status_code=204)
