"""The served OpenAPI document, and Schemathesis fuzzing the live server against it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from sqlalchemy import Engine

from m2m.asgi import create_app
from m2m.clock import ManualClock
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET
from m2m.settings import Settings
from tests.support.servers import free_port, run_server


def test_every_endpoint_is_documented_with_its_errors(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert set(paths) >= {"/token", "/revoke", "/m2m/1.0.0/simcards"}
    assert {"401", "429", "503"} <= set(paths["/token"]["post"]["responses"])
    assert {"401", "403", "404", "422", "429", "503"} <= set(
        paths["/m2m/1.0.0/simcards"]["get"]["responses"]
    )
    schemes = document["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyHeader", "clientBasic"} <= set(schemes)
    assert client.get("/docs").status_code == 200


@pytest.fixture
def fuzzed_server(
    settings: Settings, engine: Engine, clock: ManualClock, seeded: None
) -> Iterator[str]:
    # Default settings, failure budgets included: the throttle must never refuse the fuzzer's
    # valid credentials, however many invalid ones it sends first from the same address.
    with run_server(create_app(settings, engine=engine, clock=clock), free_port()) as base_url:
        yield base_url


# GET /audit-events: its ``cursor`` is any string to the schema, but only one the server made
# (from a Link header) is accepted; any other is a 422 naming it, as it should be. And it answers
# 200 to the fuzzer's credentials, so Schemathesis re-sends it without them; coming last in the
# document, that arrives once /token's fuzzing has spent the address's failure budget, and gets
# the throttle's 429 (its own tests check the 401: test_audit_events).
# GET /simcards: likewise, a list's cursor is valid only for the filters it was issued with (and
# only as this API wrote it): no schema can say so, and the generated ones are refused with a 422
# naming ``cursor``; tests/test_inventory_api.py checks that every filter and combination is
# accepted.
# GET /usage and GET /simcards/{iccid}/usage: a range is at most so many days or months by
# granularity, and ``to`` is not before ``from`` — relations between parameters that no schema
# states; a range past them is a 422 naming ``from`` (tests/test_usage_api.py), as is a cursor
# the server did not make.
SCHEMATHESIS_CONFIG = """
[[operations]]
include-path = "/m2m/1.0.0/audit-events"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "422", "429"]
checks.ignored_auth.enabled = false

[[operations]]
include-path = "/m2m/1.0.0/simcards"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "422", "429"]

[[operations]]
include-path = "/m2m/1.0.0/usage"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "422", "429"]

[[operations]]
include-path = "/m2m/1.0.0/simcards/{iccid}/usage"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "422", "429"]
"""


def test_schemathesis_finds_no_failure(fuzzed_server: str, tmp_path: Path) -> None:
    """Every Schemathesis check against the live server, authenticated as the sandbox.

    What it may still see, and why that is right: ``POST /token`` and ``POST /revoke`` mostly
    answer 401 (it cannot know a client secret) and, once the address's failure budget is spent,
    429 to those *invalid* attempts — the throttle doing its job. A 429 to a valid credential
    would fail the run ("invalid auth answered 429" / a valid call refused), and does not happen.
    """
    token = httpx.post(
        f"{fuzzed_server}/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    ).json()["access_token"]
    # The fuzzer sends the same few Idempotency-Keys with ever different bodies, which is
    # exactly the misuse the server refuses (422 idempotency_key_reused), and it reads those
    # refusals as valid requests rejected. The document it fuzzes is the served one without
    # that header; test_idempotency_api covers the header's answers.
    document = httpx.get(f"{fuzzed_server}/openapi.json").json()
    # The sandbox's control API is fuzzed on its own (below): its reset and clock would pull the
    # ground from under this run (tokens expire, the SIMs come back).
    document["paths"] = {
        path: operations
        for path, operations in document["paths"].items()
        if not path.startswith("/sandbox/")
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            parameters = operation.get("parameters", [])
            operation["parameters"] = [p for p in parameters if p["name"] != "Idempotency-Key"]
    fuzzed_document = tmp_path / "openapi.json"
    fuzzed_document.write_text(json.dumps(document))
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG, encoding="utf-8")
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        str(fuzzed_document),
        "--url",
        fuzzed_server,
        "--header",
        f"Authorization: Bearer {token}",
        "--header",
        f"x-api-key: {API_KEY}",
        "--checks",
        "all",
        "--max-examples",
        "100",
    ]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    generated = re.search(r"(\d+) generated", result.stdout)
    assert generated is not None
    assert int(generated.group(1)) >= 100  # it really exercised the API


def test_schemathesis_finds_no_failure_in_the_sandbox_control_api(
    fuzzed_server: str, tmp_path: Path
) -> None:
    """The control API (unauthenticated, for loopback callers like this one) fuzzed alone."""
    document = httpx.get(f"{fuzzed_server}/openapi.json").json()
    document["paths"] = {
        path: operations
        for path, operations in document["paths"].items()
        if path.startswith("/sandbox/")
    }
    assert len(document["paths"]) >= 4
    fuzzed_document = tmp_path / "openapi.json"
    fuzzed_document.write_text(json.dumps(document))
    # POST /sandbox/clock: a duration's syntax and the time's range (2000 to 2200, far from
    # datetime's limits) are not in the schema; what is refused is a 422 naming the field.
    # POST /sandbox/scenario: a scenario over its 10,000 SIMs made of long strings passes the
    # route's 4 MB body limit before its checks and is refused with 413 (body_too_large), a
    # refusal Schemathesis's default list lacks (an occasional seed builds such a body).
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        '[[operations]]\ninclude-path = "/sandbox/clock"\ninclude-method = "POST"\n'
        'checks.positive_data_acceptance.expected-statuses = ["2xx", "422"]\n'
        '[[operations]]\ninclude-path = "/sandbox/scenario"\ninclude-method = "POST"\n'
        'checks.negative_data_rejection.expected-statuses = ["400", "413", "422"]\n',
        encoding="utf-8",
    )
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        str(fuzzed_document),
        "--url",
        fuzzed_server,
        "--checks",
        "all",
        "--max-examples",
        "50",
    ]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def _document(client: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def test_the_served_document_is_valid_openapi(client: TestClient) -> None:
    validate(_document(client))


def test_every_m2m_operation_needs_the_token_and_the_api_key_together(client: TestClient) -> None:
    """One requirement naming both: a list of two would mean "either", and generated clients
    and Swagger UI would send one of them only."""
    document = _document(client)
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path.startswith("/m2m/1.0.0/"):
                assert operation["security"] == [{"HTTPBearer": [], "APIKeyHeader": []}], path
            elif path.startswith("/sandbox/"):  # the control API: loopback, no credentials
                assert operation["security"] == [], path
            elif path.startswith("/operator/"):  # the operator's systems: an operator token
                assert operation["security"] == [{"OperatorToken": []}], path
            else:
                assert operation["security"] == [{"clientBasic": []}], path


def test_operation_ids_are_the_routes_own_names(client: TestClient) -> None:
    ids = [
        operation["operationId"]
        for operations in _document(client)["paths"].values()
        for operation in operations.values()
    ]
    assert len(set(ids)) == len(ids)
    assert {"token", "revoke", "get_simcards", "configure_callback", "request_status"} <= set(ids)
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", i) for i in ids), ids


def test_thresholds_are_bounded_by_the_exact_largest_64_bit_integer(client: TestClient) -> None:
    text = client.get("/openapi.json").text
    assert "e+18" not in text
    data = _document(client)["components"]["schemas"]["DataServiceProfile"]["properties"]
    assert data["DailyTreshold"]["maximum"] == 2**63 - 1
    assert data["MonthlyTreshold"]["minimum"] == 0


def test_request_status_documents_only_the_answers_it_gives(client: TestClient) -> None:
    operation = _document(client)["paths"]["/m2m/1.0.0/requests/{tracking_number}"]["get"]
    assert "422" not in operation["responses"]
    assert "404" in operation["responses"]
