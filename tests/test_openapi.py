"""The served OpenAPI document, and Schemathesis fuzzing the live server against it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
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
    # Generous failure budget: the fuzzer sends many bad credentials on purpose.
    lenient = settings.model_copy(update={"auth_max_failures": 1_000_000})
    with run_server(create_app(lenient, engine=engine, clock=clock), free_port()) as base_url:
        yield base_url


def test_schemathesis_finds_no_failure(fuzzed_server: str, tmp_path: Path) -> None:
    """Schemathesis' default checks against the live server, authenticated as the sandbox."""
    token = httpx.post(
        f"{fuzzed_server}/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    ).json()["access_token"]
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{fuzzed_server}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--header",
        f"x-api-key: {API_KEY}",
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
