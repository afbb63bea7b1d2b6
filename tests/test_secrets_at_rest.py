"""A dump of the database never contains a usable credential in clear."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from m2m.storage.tables import metadata
from tests.support.tenants import Tenant


def dump(engine: Engine) -> str:
    """Every value of every table, as text (bytes as hex), like a logical backup."""
    lines = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                values = [v.hex() if isinstance(v, bytes) else str(v) for v in row]
                lines.append(f"{table.name}: " + " | ".join(values))
    return "\n".join(lines)


def test_database_dump_holds_no_secret(client: TestClient, engine: Engine, tenant: Tenant) -> None:
    issued = client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": tenant.client_id,
            "client_secret": tenant.client_secret,
        },
    ).json()["access_token"]
    text = dump(engine)
    assert tenant.client_id in text  # the dump is real: the public id is there
    for secret in (tenant.api_key, tenant.client_secret, tenant.permanent_token, issued):
        assert secret not in text
        assert secret.encode().hex() not in text
