"""The lifecycle requests of the M2M API (documented) and following one (extension)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from m2m.api.deps import CurrentAccountId, ServicesDep
from m2m.api.idempotency import IdempotencyKey, idempotent_write
from m2m.api.schemas import ErrorBody, error_responses
from m2m.errors import BadRequest, M2MError, NotFound
from m2m.identifiers import (
    ICCID_FORMAT_PATTERN,
    IMSI_PATTERN,
    MSISDN_PATTERN,
    IdentifierType,
    iccid_format_problem,
    imsi_problem,
    msisdn_problem,
    normalize_msisdn,
)
from m2m.intake import Device, accept_request_in
from m2m.lifecycle import Operation
from m2m.storage.request_status import ItemStatus, RequestSummary, get_request

router = APIRouter()


class PayloadTooLarge(M2MError):
    status_code = 413
    default_code = "too_many_devices"


class DeviceIn(BaseModel):
    identifier: str = Field(min_length=1, max_length=32)
    identifierType: IdentifierType


class TrackingNumberPublic(BaseModel):
    TrackingNumber: str


_devices = TypeAdapter(list[DeviceIn])
# Format only: a well-formed identifier that matches no SIM is a per-device "not found".
_IDENTIFIER_RULES = {
    IdentifierType.MSISDN: msisdn_problem,
    IdentifierType.ICCID: iccid_format_problem,
    IdentifierType.IMSI: imsi_problem,
}


# A device is about 60 bytes of JSON; this leaves room for whitespace and extra fields.
BYTES_PER_DEVICE = 256


def max_body_bytes(max_devices: int) -> int:
    """The largest body a request of ``max_devices`` devices can need (``m2m.asgi`` refuses a
    larger one while it streams, before it is read)."""
    return max_devices * BYTES_PER_DEVICE + 1024


def parse_devices(raw: bytes, limit: int) -> list[DeviceIn]:
    """The request body as devices, or the error that names what is wrong with it."""
    if len(raw) > max_body_bytes(limit):
        raise PayloadTooLarge(
            f"The body is {len(raw)} bytes; at most {limit} devices are accepted in one request."
        )
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as error:  # also: nesting and huge-number limits
        raise BadRequest(f"The body is not valid JSON: {str(error)[:200]}.") from error
    if not isinstance(data, list) or not data:
        raise BadRequest(
            'The body must be a non-empty JSON array of {"identifier", "identifierType"}.'
        )
    if len(data) > limit:
        raise PayloadTooLarge(f"{len(data)} devices in one request; the maximum is {limit}.")
    try:
        devices = _devices.validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = "body[" + "].".join(str(p) for p in first["loc"]) if first["loc"] else "body"
        raise BadRequest(f"{where}: {first['msg']}.") from error
    for index, device in enumerate(devices):
        value = device.identifier
        if device.identifierType is IdentifierType.MSISDN:
            value = device.identifier = normalize_msisdn(value)
        problem = _IDENTIFIER_RULES[device.identifierType](value)
        if problem:
            raise BadRequest(f"body[{index}].identifier: {problem}.")
    return devices


def _device_variant(kind: IdentifierType, pattern: str) -> dict[str, Any]:
    return {
        "properties": {
            "identifierType": {"const": kind.value},
            "identifier": {"type": "string", "pattern": pattern},
        }
    }


def _request_body_schema(max_devices: int) -> dict[str, Any]:
    """The body as JSON Schema, written out (it is parsed by hand, see ``parse_devices``)."""
    device = {
        "type": "object",
        "required": ["identifier", "identifierType"],
        "properties": {
            "identifier": {"type": "string", "description": "MSISDN, ICCID or IMSI"},
            "identifierType": {"type": "string", "enum": [kind.value for kind in IdentifierType]},
        },
        "oneOf": [
            _device_variant(IdentifierType.MSISDN, MSISDN_PATTERN),
            _device_variant(IdentifierType.ICCID, ICCID_FORMAT_PATTERN),
            _device_variant(IdentifierType.IMSI, IMSI_PATTERN),
        ],
    }
    # The limit is described, not declared as maxItems: more devices is answered 413, which
    # schema-driven tools would expect to be a 400/422.
    schema = {
        "type": "array",
        "minItems": 1,
        "items": device,
        "description": f"At most {max_devices} devices (more: 413 too_many_devices).",
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _accept(
    operation: Operation,
    request: Request,
    account_id: int,
    services: ServicesDep,
    x_callback_token: str,
    idempotency_key: str | None,
) -> Response:
    """Accept the request for every device at once; results arrive at the callback URL."""
    raw = await request.body()
    # Parsed before the write transaction (10,000 devices take a while), refused in it: with an
    # Idempotency-Key, a refusal is an answer recorded like any other.
    refusal: M2MError | None = None
    try:
        devices = parse_devices(raw, services.settings.max_devices_per_request)
    except M2MError as error:
        if idempotency_key is None:
            raise
        refusal = error

    def work(conn: Connection) -> Response:
        if refusal is not None:
            raise refusal
        tracking_number = accept_request_in(
            conn,
            services.clock,
            account_id,
            operation,
            [Device(d.identifier, d.identifierType) for d in devices],
            x_callback_token,
        )
        return JSONResponse({"TrackingNumber": tracking_number}, status_code=202)

    # The callback token is part of what was asked: the same key with another token is another
    # request.
    digested = raw + b"\n" + x_callback_token.encode()
    answer = await idempotent_write(request, services, account_id, idempotency_key, digested, work)
    services.notify_work()
    return answer


CallbackToken = Annotated[
    str,
    Header(
        alias="x-callback-token",
        min_length=1,
        max_length=1024,
        pattern=r"^[\x20-\x7e]+$",  # printable ASCII: sent back byte for byte
        description="Sent back as a header with every status message of this request.",
    ),
]


def _add_operation_route(target: APIRouter, operation: Operation, max_devices: int) -> None:
    """One documented endpoint per operation: /requests/activation, /requests/deactivation, …"""

    async def endpoint(
        request: Request,
        account_id: CurrentAccountId,
        services: ServicesDep,
        x_callback_token: CallbackToken,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        return await _accept(
            operation, request, account_id, services, x_callback_token, idempotency_key
        )

    endpoint.__doc__ = (
        f"Request the {operation.value} of SIM cards; answers at once with a TrackingNumber, and "
        "each device's result is POSTed to the callback URL."
    )
    target.add_api_route(
        f"/requests/{operation.value}",
        endpoint,
        methods=["POST"],
        status_code=202,
        response_model=TrackingNumberPublic,
        tags=["Lifecycle requests"],
        summary=f"Request {operation.value}",
        operation_id=f"request_{operation.value}",
        responses={
            **error_responses(400, 401, 403, 409, 422, 429),
            413: {"model": ErrorBody, "description": "Too many devices in one request"},
        },
        openapi_extra=_request_body_schema(max_devices),
    )


def request_router(max_devices: int) -> APIRouter:
    """The four documented lifecycle endpoints (their schema states the configured limit)."""
    requests_router = APIRouter()
    for operation in Operation:
        _add_operation_route(requests_router, operation, max_devices)
    return requests_router


# --- request status (extension) -------------------------------------------------------------


class DeliveryPublic(BaseModel):
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    deliveredAt: datetime | None
    lastError: str | None


class ItemPublic(BaseModel):
    identifier: str
    identifierType: str
    status: str = Field(description="pending, in_progress or done")
    resultStatus: str | None
    messages: list[str]
    finishedAt: datetime | None
    callback: DeliveryPublic | None


class RequestStatusPublic(BaseModel):
    trackingNumber: str
    operation: Operation
    acceptedAt: datetime
    finishedAt: datetime | None
    deviceCount: int
    devices: list[ItemPublic]


@router.get(
    # The uuid convertor keeps /requests/activation & co. from matching this route, so a GET
    # there is 405 (Allow: POST), and a malformed TrackingNumber is simply not found.
    "/requests/{tracking_number:uuid}",
    response_model=RequestStatusPublic,
    tags=["Lifecycle requests"],
    summary="Follow a request (extension)",
    responses=error_responses(401, 403, 404, 429),
)
async def request_status(
    tracking_number: Annotated[
        uuid.UUID, Path(description="The TrackingNumber the request was answered with.")
    ],
    account_id: CurrentAccountId,
    services: ServicesDep,
) -> RequestStatusPublic:
    """The request's operation and timing, and per device its result and callback delivery."""

    def load() -> tuple[RequestSummary, list[ItemStatus]] | None:
        with services.engine.connect() as conn:
            return get_request(conn, account_id, str(tracking_number))

    found = await run_in_threadpool(load)
    if found is None:
        raise NotFound(f"No request with TrackingNumber {tracking_number} in your account.")
    summary, items = found
    return RequestStatusPublic(
        trackingNumber=summary.tracking_number,
        operation=Operation(summary.operation),
        acceptedAt=summary.accepted_at,
        finishedAt=summary.finished_at,
        deviceCount=summary.item_count,
        devices=[
            ItemPublic(
                identifier=i.identifier,
                identifierType=i.identifier_type,
                status="in_progress" if i.status == "claimed" else i.status,
                resultStatus=i.result_status,
                messages=i.messages or [],
                finishedAt=i.finished_at,
                callback=None
                if i.delivery_status is None
                else DeliveryPublic(
                    status=i.delivery_status,
                    attempts=i.delivery_attempts or 0,
                    deliveredAt=i.delivered_at,
                    lastError=i.delivery_error,
                ),
            )
            for i in items
        ],
    )
