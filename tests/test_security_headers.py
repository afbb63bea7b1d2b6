"""What every answer says about its security: nosniff, HSTS outside the sandbox, and redirects
that never send a visitor to the host a request's Host header named."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from m2m.asgi import create_app
from m2m.clock import ManualClock
from m2m.security_headers import relative_location
from m2m.settings import Settings


def production_client(
    settings: Settings, engine: Engine, clock: ManualClock, base_url: str, **update: object
) -> TestClient:
    production = settings.model_copy(update={"sandbox": False, **update})
    return TestClient(create_app(production, engine=engine, clock=clock), base_url=base_url)


@pytest.mark.parametrize(
    ("location", "host", "expected"),
    [
        ("https://m2m.test/console/", "m2m.test", "/console/"),
        ("https://M2M.test:8443/a?b=c#d", "m2m.test:8443", "/a?b=c#d"),
        ("https://m2m.test", "m2m.test", "/"),
        ("https://other.example/x", "m2m.test", "https://other.example/x"),  # not ours: kept
        ("/console/", "m2m.test", "/console/"),
        ("https://m2m.test/x", None, "https://m2m.test/x"),
        # Relative, these would name another host: the same path is written so that it cannot.
        ("https://m2m.test//evil.example/x", "m2m.test", "/.//evil.example/x"),
        ("https://m2m.test/\\evil.example/x", "m2m.test", "/./\\evil.example/x"),
    ],
)
def test_a_location_on_the_requests_own_host_is_made_relative(
    location: str, host: str | None, expected: str
) -> None:
    assert relative_location(location, host) == expected


def test_the_host_header_is_not_reflected_in_redirects(client: TestClient) -> None:
    for path in ("/console", "/m2m/1.0.0/simcards/?msisdn=32470000001"):
        response = client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
        assert response.status_code == 307
        assert "evil.example" not in response.headers["location"]
        assert response.headers["location"].startswith("/")


def test_hsts_outside_the_sandbox_over_https(
    settings: Settings, engine: Engine, clock: ManualClock
) -> None:
    with production_client(settings, engine, clock, "https://m2m.test") as client:
        for path in ("/openapi.json", "/console/login", "/nowhere"):
            response = client.get(path)
            assert response.headers["strict-transport-security"] == "max-age=31536000"
    with production_client(
        settings, engine, clock, "https://m2m.test", hsts_max_age_seconds=600
    ) as client:
        assert client.get("/openapi.json").headers["strict-transport-security"] == "max-age=600"


def test_no_hsts_in_the_sandbox_or_over_plain_http(
    client: TestClient, settings: Settings, engine: Engine, clock: ManualClock
) -> None:
    assert "strict-transport-security" not in client.get("/openapi.json").headers
    with production_client(settings, engine, clock, "http://m2m.test") as plain:
        response = plain.get("/openapi.json")
    assert response.status_code == 403  # https_required
    assert "strict-transport-security" not in response.headers


def test_every_answer_is_nosniff(client: TestClient) -> None:
    for response in (
        client.get("/openapi.json"),
        client.get("/m2m/1.0.0/simcards?msisdn=32470000001"),  # 401
        client.post("/token"),
        client.get("/nowhere"),
        client.get("/console/login"),
    ):
        assert response.headers.get_list("x-content-type-options") == ["nosniff"]
