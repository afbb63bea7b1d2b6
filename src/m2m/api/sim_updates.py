"""PATCH /m2m/1.0.0/simcards/{iccid} (extension): a JSON Merge Patch (RFC 7396) of a SIM's
editable fields, conditional on its ETag (If-Match), idempotent with an Idempotency-Key.

What a patch may change and how it is checked is ``m2m.sim_edit`` (pure, shared with the
console's edit form); the write, with its audit entry, is ``storage.sim_updates``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from m2m import access
from m2m.api.deps import CALLER_SECURITY, caller_of, current_account_id
from m2m.api.idempotency import IDEMPOTENCY_DESCRIPTION, idempotent_write
from m2m.api.schemas import error_responses
from m2m.audit import request_id_from
from m2m.errors import (
    BadRequest,
    InvalidFields,
    M2MError,
    NotFound,
    PreconditionFailed,
    UnsupportedMediaType,
)
from m2m.idempotency import HEADER as IDEMPOTENCY_HEADER
from m2m.idempotency import KEY_PATTERN as IDEMPOTENCY_KEY_PATTERN
from m2m.labels import MAX_LABELS
from m2m.profile import (
    CUSTOM_FIELD_NAMES,
    TEXT_LENGTH,
    CustomFieldName,
    ListedSimCard,
    Text,
    Threshold,
    listed_sim_json,
    stored_profile,
)
from m2m.storage import sim_updates
from m2m.storage.sim_updates import SimRow

router = APIRouter(tags=["SIM cards"])

MERGE_PATCH = "application/merge-patch+json"
_PATCH_MEDIA_TYPES = (MERGE_PATCH, "application/json")
# The largest valid patch: every label, custom field and the cost center at its longest, each
# character written as a \uXXXX escape, with room for the JSON around them.
MAX_PATCH_BYTES = (
    6 * TEXT_LENGTH * (MAX_LABELS + len(CUSTOM_FIELD_NAMES) + 1) + 6 * 64 * (MAX_LABELS) + 16 * 1024
)


class ThresholdsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    DailyTreshold: Threshold | None = None
    MonthlyTreshold: Threshold | None = None


class SimPatch(BaseModel):
    """A JSON Merge Patch (RFC 7396) of a SIM's editable fields: a member set replaces (objects
    merge), a member set to null removes (a cost center or custom field becomes "", a threshold
    0, a label goes). Any other field is refused with a 422 that names it."""

    model_config = ConfigDict(extra="forbid")

    CostCenter: Text | None = None
    CustomFields: dict[CustomFieldName, Text | None] | None = None
    DataService: ThresholdsPatch | None = None
    SMSService: ThresholdsPatch | None = None
    VoiceService: ThresholdsPatch | None = None
    Labels: dict[str, str | None] | None = Field(
        default=None,
        description=f"At most {MAX_LABELS} labels; keys: 1 to 64 letters, digits or . _ - / :, "
        "starting with a letter or digit; values: at most 200 characters.",
    )


# Documented in the OpenAPI document's components (see ``m2m.api.app``).
BODY_MODELS = (SimPatch,)

_IF_MATCH_DESCRIPTION = (
    'Update only if the SIM is still at this version: its ETag (e.g. "3"), or *. Otherwise '
    "412 precondition_failed, and nothing is changed."
)


def if_match_versions(header: str | None) -> set[int] | None:
    """The versions an If-Match header allows (None: any). Strong comparison (RFC 9110
    §13.1.1): a weak tag, or anything that is not one of our tags, matches no version."""
    if header is None or header.strip() == "*":
        return None
    versions = set()
    for tag in header.split(","):
        tag = tag.strip()
        if len(tag) > 2 and tag[0] == tag[-1] == '"' and tag[1:-1].isdigit() and tag.isascii():
            versions.add(int(tag[1:-1]))
    return versions


def etag(version: int) -> str:
    """A SIM's entity tag: its row version, strong (every change bumps it)."""
    return f'"{version}"'


def _parse_patch(request: Request, raw: bytes) -> object:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in _PATCH_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Send the patch as {MERGE_PATCH} (application/json is accepted too)."
        )
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise BadRequest(f"The body is not valid JSON: {str(error)[:200]}.") from error


def _answer(sim: SimRow) -> str:
    """The SIM as a list answers it (``ListedSimCard``), as JSON text."""
    return listed_sim_json(
        json.dumps(stored_profile(sim.profile)),
        sim.cost_center,
        sim.state,
        sim.imsi,
        iccid=sim.iccid,
        msisdn=sim.msisdn,
        labels_json=json.dumps(sim.labels),
    )


def _header_parameter(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    text: dict[str, Any] = {"type": "string"}
    if pattern is not None:
        text["pattern"] = pattern
    return {
        "name": name,
        "in": "header",
        "required": False,
        "schema": {
            "anyOf": [text, {"type": "null"}],
            "description": description,
            "title": name.title(),
        },
        "description": description,
    }


_ICCID_DESCRIPTION = "The SIM's ICCID."
# What FastAPI would write for these parameters; the route reads them itself (see below).
UPDATE_PARAMETERS = [
    {
        "name": "iccid",
        "in": "path",
        "required": True,
        "schema": {
            "type": "string",
            "maxLength": 22,
            "description": _ICCID_DESCRIPTION,
            "title": "Iccid",
        },
        "description": _ICCID_DESCRIPTION,
    },
    _header_parameter(IDEMPOTENCY_HEADER, IDEMPOTENCY_DESCRIPTION, IDEMPOTENCY_KEY_PATTERN),
    _header_parameter("if-match", _IF_MATCH_DESCRIPTION),
    _header_parameter(
        "x-request-id",
        "Your id for this request, kept in the audit trail (1 to 100 printable ASCII "
        "characters; anything else is ignored).",
    ),
]


@router.patch(
    "/simcards/{iccid}",
    response_model=ListedSimCard,
    summary="Update a SIM card (extension)",
    responses={
        200: {
            "description": "The SIM as it now is, with its ETag",
            "headers": {
                "ETag": {
                    "description": 'The SIM\'s version, e.g. "3": send it in If-Match',
                    "schema": {"type": "string"},
                }
            },
        },
        **error_responses(401, 403, 404, 409, 412, 413, 415, 422, 429),
    },
    openapi_extra={
        "parameters": UPDATE_PARAMETERS,
        "security": CALLER_SECURITY,
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"$ref": "#/components/schemas/SimPatch"}}
                for media in _PATCH_MEDIA_TYPES
            },
        },
    },
)
async def update_simcard(request: Request) -> Response:
    """Change a SIM's cost center, custom fields, thresholds or labels (JSON Merge Patch)."""
    # Inputs read by hand, after the credentials, as GET /simcards does: FastAPI's solving of
    # the dependencies and headers was most of this route's CPU time.
    caller = await caller_of(request)
    account_id = await current_account_id(caller)
    services = caller.services
    iccid: str = request.path_params["iccid"]
    if len(iccid) > 22:
        error = {
            "type": "string_too_long",
            "loc": ("path", "iccid"),
            "msg": "String should have at most 22 characters",
            "input": iccid,
            "ctx": {"max_length": 22},
        }
        raise RequestValidationError([error])
    idempotency_key = request.headers.get(IDEMPOTENCY_HEADER)
    if_match = request.headers.get("if-match")
    x_request_id = request.headers.get("x-request-id")
    raw = await request.body()
    request_id = request_id_from(x_request_id)
    # Parsed before the write transaction (not while holding the database's write lock), refused
    # in it: with an Idempotency-Key, a refusal is an answer recorded like any other.
    refusal: M2MError | None = None
    patch: object = None
    try:
        patch = _parse_patch(request, raw)
    except M2MError as error:
        if idempotency_key is None:
            raise
        refusal = error

    def work(conn: Connection) -> Response:
        if refusal is not None:
            raise refusal
        outcome = sim_updates.update_sim(
            conn,
            account_id=account_id,
            iccid=iccid,
            patch=patch,
            if_match=if_match_versions(if_match),
            actor=lambda c: access.actor_of(c, caller.token, request_id),
            now=services.clock.now(),
        )
        if outcome.sim is None:
            # Same answer for "no such SIM" and "another account's SIM".
            raise NotFound(f"No SIM card with ICCID {iccid} in your account.")
        if outcome.stale:
            raise PreconditionFailed(
                f"The SIM has changed: it is at version {etag(outcome.sim.version)}, not "
                f"{if_match}. Read it again and retry.",
            )
        if outcome.problems:
            raise InvalidFields([(p.field, p.problem) for p in outcome.problems])
        return Response(
            _answer(outcome.sim),
            media_type="application/json",
            headers={"ETag": etag(outcome.sim.version)},
        )

    # update_sim decides every refusal (no SIM, a stale ETag, a bad field) before it writes.
    return await idempotent_write(
        request, services, account_id, idempotency_key, raw, work, refuses_before_writing=True
    )
