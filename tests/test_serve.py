"""``m2m serve`` as a user starts it: a real process, real HTTP on loopback."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from m2m import accounts, sandbox
from m2m.audit import ADMIN_CLI
from m2m.callbacks import signing_secret
from m2m.clock import SystemClock
from m2m.settings import SANDBOX_SECRET_KEY
from m2m.storage import accounts as account_store
from m2m.storage.engine import make_engine, write_transaction
from m2m.storage.migrate import upgrade
from tests.support.receiver import Receiver
from tests.support.servers import M2M_BIN, clean_env, free_port, run_serve


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``m2m serve --sandbox`` started as a user would; yields its base URL and the process."""
    port = free_port()
    process = subprocess.Popen(
        [M2M_BIN, "serve", "--sandbox", "--port", str(port)],
        env=clean_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base_url}/openapi.json", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"sandbox did not start:\n{process.communicate()[0]}") from None
            time.sleep(0.1)
    yield base_url, process
    if process.poll() is None:
        process.terminate()
        process.communicate(timeout=10)


def test_sandbox_serves_the_documented_calls_verbatim(
    serve_process: tuple[str, subprocess.Popen[str]],
) -> None:
    base_url, process = serve_process
    # The documentation's token curl, with the sandbox's credentials.
    token = httpx.post(
        f"{base_url}/token?grant_type=client_credentials&scope=openid"
        "&client_id=sandbox-client&client_secret=sandbox-secret&Accept=application/json",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert token.status_code == 200
    access_token = token.json()["access_token"]
    # The documentation's simcards curl.
    sims = httpx.get(
        f"{base_url}/m2m/1.0.0/simcards?msisdn=32470000001",
        headers={
            "x-api-key": "sandbox-api-key",
            "Accept": "application/json",
            "Content-Type": "application/json",
            "Authorization": f"Bearer {access_token}",
        },
        follow_redirects=True,
    )
    assert sims.status_code == 200
    assert sims.json()[0]["State"] == "Active"

    states = {}
    for n in range(1, 101):
        response = httpx.get(
            f"{base_url}/m2m/1.0.0/simcards?msisdn={32470000000 + n}",
            headers={"x-api-key": "sandbox-api-key", "Authorization": f"Bearer {access_token}"},
        )
        states[n] = response.json()[0]["State"]
    assert {n for n, s in states.items() if s == "Active"} == set(range(1, 51))
    assert {n for n, s in states.items() if s == "Ready"} == set(range(51, 91))
    assert {n for n, s in states.items() if s == "Deactivated"} == set(range(91, 101))

    process.terminate()
    output = process.communicate(timeout=10)[0]
    access_line = next(line for line in output.splitlines() if "POST /token" in line)
    assert "POST /token?*** HTTP/1.1" in access_line  # never a credential in the logs
    assert "sandbox-client" in output
    assert "sandbox-secret" in output
    assert "sandbox-api-key" in output
    assert "curl" in output
    # The demo account's callback signing secret, for the receiver to verify with (the README's).
    assert signing_secret(SANDBOX_SECRET_KEY, 1, 1) in output
    assert "whsec_JmtMVUplDX1rMpmyVBO1UW72xREN3z1xZo3k3SH4tZo=" in output


def test_production_refuses_a_missing_or_default_secret(tmp_path: Path) -> None:
    missing = run_serve(tmp_path)
    assert missing.returncode == 1
    assert "M2M_SECRET_KEY is not set" in missing.stderr
    default = run_serve(tmp_path, M2M_SECRET_KEY="sandbox-secret-key-do-not-use-in-production")
    assert default.returncode == 1
    assert "sandbox" in default.stderr


def test_production_refuses_plain_http(tmp_path: Path) -> None:
    result = run_serve(tmp_path, M2M_SECRET_KEY="x" * 40)
    assert result.returncode == 1
    assert "plain HTTP" in result.stderr


def test_an_unreachable_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    result = run_serve(
        tmp_path, "--sandbox", M2M_DATABASE_URL="postgresql://postgres:pw-s3cret@127.0.0.1:1/m2m"
    )

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot use the database at postgresql+psycopg://postgres:***@")
    assert "Connection refused" in line
    assert "pw-s3cret" not in result.stdout + result.stderr


def test_production_refuses_a_database_holding_the_sandbox_account(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm2m.db'}")
    upgrade(engine)
    with write_transaction(engine) as conn:
        sandbox.seed(conn, SystemClock().now())
    engine.dispose()
    result = run_serve(tmp_path, M2M_SECRET_KEY="x" * 40, M2M_BEHIND_TLS_PROXY="true")
    assert result.returncode == 1
    assert "sandbox account" in result.stderr


def test_the_sandbox_refuses_a_database_holding_other_accounts(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm2m.db'}")
    upgrade(engine)
    accounts.create_account(engine, SystemClock(), "Real Customer", actor=ADMIN_CLI)
    engine.dispose()
    result = run_serve(tmp_path, "--sandbox")
    assert result.returncode == 1
    assert "already holds accounts" in result.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'm2m.db'}")
    with engine.connect() as conn:
        assert account_store.find_sandbox_account(conn) is None  # nothing was added
    engine.dispose()


def test_production_serves_https_with_its_own_certificate(tmp_path: Path) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    certificate.private_key_pem.write_to_path(str(key_file))
    authority.cert_pem.write_to_path(str(ca_file))
    port = free_port()
    process = subprocess.Popen(
        [
            M2M_BIN,
            "serve",
            "--port",
            str(port),
            "--ssl-certfile",
            str(cert_file),
            "--ssl-keyfile",
            str(key_file),
        ],
        env=clean_env(tmp_path, M2M_SECRET_KEY="x" * 40),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.post(
                    f"https://127.0.0.1:{port}/token",
                    data={"grant_type": "client_credentials"},
                    verify=context,
                    timeout=2,
                )
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert response.status_code == 401  # served over TLS, and no client yet
        assert response.json()["error"] == "invalid_client"
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_sandbox_serves_the_documented_lifecycle_calls(
    serve_process: tuple[str, subprocess.Popen[str]], receiver: Receiver
) -> None:
    base_url, _ = serve_process
    token = httpx.post(
        f"{base_url}/token?grant_type=client_credentials&scope=openid"
        "&client_id=sandbox-client&client_secret=sandbox-secret",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}", "x-api-key": "sandbox-api-key"}
    # The documentation's callback curl, with authorization and a custom header.
    configured = httpx.post(
        f"{base_url}/m2m/1.0.0/configure/callback",
        headers={**bearer, "Content-Type": "application/json"},
        content=json.dumps(
            {
                "url": receiver.url,
                "headers": {"Authorization": "Bearer cb-token", "x-test": "Another custom header"},
            }
        ),
        follow_redirects=True,
    )
    assert configured.status_code in (200, 204)
    # The documentation's deactivation and reactivation curls.
    for operation, accept_header in [
        ("deactivation", {"Accept-Language": "application/json"}),
        ("reactivation", {"Accept": "application/json"}),
    ]:
        response = httpx.post(
            f"{base_url}/m2m/1.0.0/requests/{operation}",
            headers={
                **bearer,
                "Content-Type": "application/json",
                **accept_header,
                "x-callback-token": "encotest",
            },
            content='[{"identifier":"32470000001","identifierType":"MSISDN"}]',
            follow_redirects=True,
        )
        assert response.status_code == 202
        assert set(response.json()) == {"TrackingNumber"}
        deadline = time.monotonic() + 30
        while not any(
            m["trackingNumber"] == response.json()["TrackingNumber"] for m in receiver.messages()
        ):
            assert time.monotonic() < deadline, "no callback arrived"
            time.sleep(0.05)
    assert len(receiver.received) == 2
    for message in receiver.received:
        assert message.headers["x-callback-token"] == "encotest"
        assert message.headers["authorization"] == "Bearer cb-token"
        assert message.headers["x-test"] == "Another custom header"
        body = message.json()
        assert set(body) == {"trackingNumber", "device", "resultStatus", "messages"}
        assert body["device"]["identifierType"] == "ICCID"
        assert body["resultStatus"] == "Success"
    state = httpx.get(f"{base_url}/m2m/1.0.0/simcards?msisdn=32470000001", headers=bearer).json()[
        0
    ]["State"]
    assert state == "Active"


def _server_pids(log: Path, count: int, deadline: float) -> list[int]:
    """The pids of the first ``count`` API processes uvicorn reported starting in ``log``."""
    while True:
        text = log.read_text(errors="replace")
        pids = [
            int(line.rsplit("[", 1)[1].rstrip("]"))
            for line in text.splitlines()
            if "Started server process [" in line
        ]
        if len(pids) >= count:
            return pids
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} server processes did not start:\n{text}")
        time.sleep(0.1)


def _token(base_url: str) -> str:
    answer = httpx.post(
        f"{base_url}/token",
        params={
            "grant_type": "client_credentials",
            "scope": "openid",
            "client_id": sandbox.CLIENT_ID,
            "client_secret": sandbox.CLIENT_SECRET,
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_processes_share_the_port_and_a_killed_one_is_replaced(tmp_path: Path) -> None:
    """``serve --processes 2``: both answer the same single active token; after one of them is
    SIGKILLed, the server still answers and a new process takes its place."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [M2M_BIN, "serve", "--sandbox", "--port", str(port), "--processes", "2"],
            env=clean_env(tmp_path),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        first, second = _server_pids(log, 2, time.monotonic() + 60)
        tokens = set()
        deadline = time.monotonic() + 60
        while len(tokens) == 0:
            try:
                tokens.add(_token(base_url))
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        # Connections land on either process; the token is the one active token, in the database.
        tokens.update(_token(base_url) for _ in range(10))
        assert len(tokens) == 1
        os.kill(first, 9)
        pids = _server_pids(log, 3, time.monotonic() + 60)
        assert pids[2] not in (first, second)
        after: list[str] = []
        deadline = time.monotonic() + 30
        while len(after) < 5:
            try:
                after.append(_token(base_url))
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert set(after) == tokens
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode == 0, log.read_text()


def test_no_access_log_leaves_requests_out_of_the_log(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [M2M_BIN, "serve", "--sandbox", "--port", str(port), "--no-access-log"],
            env=clean_env(tmp_path),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/openapi.json").status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        _token(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=30)
    text = log.read_text()
    assert "Application startup complete" in text
    assert "/openapi.json" not in text
    assert "POST /token" not in text
