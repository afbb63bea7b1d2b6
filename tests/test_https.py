"""Outside the sandbox the API is HTTPS-only."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from m2m.api.app import create_app
from m2m.clock import ManualClock
from m2m.settings import Settings
from tests.conftest import Tenant


def production_client(
    settings: Settings, engine: Engine, clock: ManualClock, base_url: str
) -> TestClient:
    production = settings.model_copy(update={"sandbox": False})
    return TestClient(create_app(production, engine=engine, clock=clock), base_url=base_url)


def test_plain_http_is_refused(settings: Settings, engine: Engine, clock: ManualClock) -> None:
    with production_client(settings, engine, clock, "http://api") as client:
        response = client.post("/token", data={"grant_type": "client_credentials"})
    assert response.status_code == 403
    assert response.json()["error"] == "https_required"


def test_https_is_served(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    with production_client(settings, engine, clock, "https://api") as client:
        response = client.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "client_id": tenant.client_id,
                "client_secret": tenant.client_secret,
            },
        )
    assert response.status_code == 200
