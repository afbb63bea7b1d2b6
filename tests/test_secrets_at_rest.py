"""A dump of the database never contains a usable credential in clear."""

from __future__ import annotations

import sqlite3

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Tenant


def test_database_dump_holds_no_secret(
    client: TestClient, engine: Engine, database_url: str, tenant: Tenant
) -> None:
    issued = client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": tenant.client_id,
            "client_secret": tenant.client_secret,
        },
    ).json()["access_token"]
    engine.dispose()
    path = database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        dump = "\n".join(conn.iterdump())
    assert tenant.client_id in dump  # the dump is real: the public id is there
    for secret in (tenant.api_key, tenant.client_secret, tenant.permanent_token, issued):
        assert secret not in dump
        assert secret.encode().hex() not in dump.lower()
