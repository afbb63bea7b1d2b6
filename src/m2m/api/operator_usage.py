"""POST /operator/1.0.0/usage: the operator's mediation system posts a batch of usage records
(``m2m.usage_import.ingest_batch``). Not part of the customers' M2M API: it takes an operator
token (``m2m admin usage tokens create``), and no customer credential opens it."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from m2m import operator_tokens
from m2m.api.deps import client_address
from m2m.api.schemas import error_responses
from m2m.errors import BadRequest, InvalidFields, TooManyFailures, Unauthenticated
from m2m.failure_budget import address_key, credential_key
from m2m.services import services_of
from m2m.usage_import import BATCH_ID_LENGTH, batch_id_problem, ingest_batch

PREFIX = "/operator/1.0.0"
MAX_RECORDS = 10_000
# A record's largest valid JSON (identifiers, two times, seven counters at 19 digits, escapes
# aside) is well under 600 bytes.
MAX_BODY_BYTES = MAX_RECORDS * 600 + 1024
MAX_PROBLEMS = 100

router = APIRouter(prefix=PREFIX, tags=["Operator: usage ingestion"])
operator_bearer = HTTPBearer(
    scheme_name="OperatorToken",
    auto_error=False,
    description="An operator token (m2mo_…) from `m2m admin usage tokens create`.",
)

DESCRIPTION = f"""\
For the operator's mediation system, not for customers: a batch of at most {MAX_RECORDS:,}
usage records, `{{"batch_id": "…", "records": [{{"iccid" or "imsi", "start", "end"?,
"data_up_bytes"?, "data_down_bytes"?, "sms_out"?, "sms_in"?, "voice_seconds"?, "network"?,
"country"?}}, …]}}` (the fields of the CSV import, docs/usage.md). Every record is checked first;
with any problem, or a record naming no SIM, nothing is counted (422, each problem by the
record's index). The same `batch_id` (1 to {BATCH_ID_LENGTH} printable characters, unique per
batch: the mediation system's own id) sent again counts nothing and answers what was counted.
"""


async def _operator(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(operator_bearer)],
) -> None:
    """Let an operator token through; charge a failed one to the failure budget."""
    services = services_of(request)
    if bearer is None:
        raise Unauthenticated("An operator token is required.", code="missing_token")
    token = bearer.credentials
    if await run_in_threadpool(operator_tokens.is_valid, services.engine, token):
        return
    keys = [address_key(client_address(request)), credential_key("operator-token", token)]
    wait = await run_in_threadpool(services.failures.charge, keys)
    if wait is not None:
        raise TooManyFailures(wait)
    raise Unauthenticated("The operator token is not valid.")


def _batch(raw: bytes) -> tuple[str, list[Any]]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The body is not JSON.") from None
    if not isinstance(body, dict):
        raise InvalidFields([("body", 'an object: {"batch_id": …, "records": […]}')])
    problems = []
    batch_id = body.get("batch_id")
    if problem := batch_id_problem(batch_id):
        problems.append(("batch_id", problem))
    records = body.get("records")
    if not isinstance(records, list) or not records:
        problems.append(("records", "a non-empty list of records"))
    elif len(records) > MAX_RECORDS:
        problems.append(("records", f"at most {MAX_RECORDS} records in one batch"))
    elif not all(isinstance(record, dict) for record in records):
        problems.append(("records", "each record is an object"))
    if problems or not isinstance(batch_id, str) or not isinstance(records, list):
        raise InvalidFields(problems)
    return batch_id, records


@router.post(
    "/usage",
    summary="Post a batch of usage records (operator)",
    description=DESCRIPTION,
    responses=error_responses(400, 401, 413, 422, 429),
)
async def post_usage(request: Request, _: Annotated[None, Security(_operator)]) -> dict[str, Any]:
    services = services_of(request)
    batch_id, records = _batch(await request.body())
    report = await run_in_threadpool(
        ingest_batch, services.engine, services.clock, batch_id, records
    )
    if report.problems:
        raise InvalidFields(
            [(f"records[{index}]", problem) for index, problem in report.problems[:MAX_PROBLEMS]]
        )
    return {
        "batch_id": batch_id,
        "records": report.records,
        "counted": report.counted,
        "already_counted": report.already_counted,
        "inactive": report.inactive,
        "threshold_events": report.crossings,
    }
