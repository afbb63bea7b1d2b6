"""Outside the sandbox the API is HTTPS-only; ``serve`` checks its certificate and key first."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from m2m.asgi import create_app
from m2m.clock import ManualClock
from m2m.settings import Settings
from tests.support.servers import run_serve
from tests.support.tenants import Tenant


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


@pytest.fixture
def pem_files(tmp_path: Path) -> Path:
    """A certificate with its key, another certificate's key, an encrypted key, a text file and
    a folder."""
    authority = trustme.CA()
    mine, other = authority.issue_cert("127.0.0.1"), authority.issue_cert("127.0.0.1")
    mine.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    mine.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    other.private_key_pem.write_to_path(str(tmp_path / "other-key.pem"))
    encrypted = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    (tmp_path / "encrypted-key.pem").write_bytes(encrypted)
    (tmp_path / "notes.txt").write_text("not a certificate\n")
    (tmp_path / "folder").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("certfile", "keyfile", "complaint"),
    [
        ("nope.pem", "key.pem", "--ssl-certfile {dir}/nope.pem: No such file or directory"),
        ("cert.pem", "nope.key", "--ssl-keyfile {dir}/nope.key: No such file or directory"),
        ("folder", "key.pem", "--ssl-certfile {dir}/folder: Is a directory"),
        (
            "key.pem",
            "cert.pem",
            "--ssl-certfile {dir}/key.pem holds no certificate, but --ssl-keyfile "
            "{dir}/cert.pem does: are the two swapped?",
        ),
        (
            "cert.pem",
            "other-key.pem",
            "--ssl-keyfile {dir}/other-key.pem is not the private key of --ssl-certfile "
            "{dir}/cert.pem",
        ),
        ("notes.txt", "key.pem", "--ssl-certfile {dir}/notes.txt holds no PEM certificate"),
        ("cert.pem", "notes.txt", "--ssl-keyfile {dir}/notes.txt holds no PEM private key"),
        ("cert.pem", "encrypted-key.pem", "--ssl-keyfile {dir}/encrypted-key.pem is encrypted"),
    ],
)
def test_serve_refuses_a_certificate_and_key_it_cannot_use_in_one_line(
    pem_files: Path, certfile: str, keyfile: str, complaint: str
) -> None:
    result = run_serve(
        pem_files,
        "--ssl-certfile",
        str(pem_files / certfile),
        "--ssl-keyfile",
        str(pem_files / keyfile),
        M2M_SECRET_KEY="x" * 40,
    )

    assert result.returncode == 1, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {complaint.format(dir=pem_files)}")
    assert not (pem_files / "m2m.db").exists()  # checked before anything was started or made
