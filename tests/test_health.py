"""``/healthz`` and ``/readyz`` (``m2m.health``): unauthenticated, answered over plain HTTP on
loopback even where the API is HTTPS-only; readiness follows the database (reachable, migrated
to this code's revision) and the process's worker. ``m2m worker --health-port`` serves the same,
and its heartbeat shows in ``m2m admin status``."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, make_url, text
from typer.testing import CliRunner

from m2m import sandbox
from m2m.asgi import create_app
from m2m.cli.main import app as cli_app
from m2m.clock import ManualClock
from m2m.settings import Settings
from m2m.storage.migrate import head_revision
from tests.support.api import auth, msisdn, request
from tests.support.constants import POSTGRES_URL
from tests.support.servers import M2M_BIN, clean_env, free_port, run_server
from tests.support.waiting import wait_for
from tests.support.worker import drain


def ready(client: TestClient) -> tuple[int, dict[str, Any]]:
    answer = client.get("/readyz")
    assert answer.headers["cache-control"] == "no-store"
    return answer.status_code, answer.json()


def test_a_running_app_with_its_worker_is_healthy_and_ready(client: TestClient) -> None:
    health = client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready(client) == (
        200,
        {"status": "ready", "checks": {"database": "ok", "schema": "ok", "worker": "ok"}},
    )


def test_an_app_whose_worker_is_not_running_is_not_ready(app: Any) -> None:
    client = TestClient(app)  # not entered: the lifespan, and so the worker, never started
    assert client.get("/healthz").status_code == 200
    status, body = ready(client)
    assert status == 503
    assert body["checks"]["worker"] == "not running"


def test_readiness_follows_the_schema_revision(api: TestClient, engine: Engine) -> None:
    assert ready(api) == (200, {"status": "ready", "checks": {"database": "ok", "schema": "ok"}})
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0010'"))
    status, body = ready(api)
    assert status == 503
    assert body["checks"]["schema"] == f"at 0010, this code needs {head_revision()}: migrate"
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head_revision()})
    assert ready(api)[0] == 200


# PostgreSQL only: a SQLite file cannot go away under an open connection.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_readiness_flips_when_the_database_goes_away_and_back(
    api: TestClient, engine: Engine
) -> None:
    name = engine.url.database
    admin = create_engine(
        make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    try:
        assert ready(api)[0] == 200
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
        status, body = ready(api)
        assert status == 503
        assert body["checks"]["database"].startswith("unreachable")
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        assert ready(api) == (
            200,
            {"status": "ready", "checks": {"database": "ok", "schema": "ok"}},
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def test_probes_answer_plain_http_on_loopback_where_the_api_needs_https(
    quiet: Settings, engine: Engine, clock: ManualClock
) -> None:
    production = quiet.model_copy(update={"sandbox": False})
    app = create_app(production, engine=engine, clock=clock)
    with run_server(app, free_port()) as base_url:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert httpx.get(base_url + path).status_code == 200, path
        refused = httpx.get(base_url + "/openapi.json")
        assert (refused.status_code, refused.json()["error"]) == (403, "https_required")
    # From anywhere else, plain HTTP is refused for the probes too.
    with TestClient(app) as remote:  # its client address is "testclient"
        assert remote.get("/healthz").status_code == 403


def test_m2m_worker_serves_probes_and_beats_in_admin_status(tmp_path: Path) -> None:
    env = clean_env(tmp_path, M2M_SANDBOX="true")
    subprocess.run([M2M_BIN, "db", "upgrade"], env=env, cwd=tmp_path, check=True, timeout=60)
    port = free_port()
    worker = subprocess.Popen(
        [M2M_BIN, "worker", "--health-port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"

    def status() -> dict[str, Any]:
        shown = subprocess.run(
            [M2M_BIN, "admin", "status", "--json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        found: dict[str, Any] = json.loads(shown.stdout)
        return found

    try:

        def answering() -> bool:
            try:
                return httpx.get(f"{base_url}/healthz").status_code == 200
            except httpx.TransportError:
                assert worker.poll() is None, worker.communicate()[0]
                return False

        wait_for(answering, 30, "the worker's health port")
        readiness = httpx.get(f"{base_url}/readyz")
        assert readiness.status_code == 200
        assert readiness.json()["checks"] == {"database": "ok", "schema": "ok", "worker": "ok"}
        assert "m2m_workers_alive 1.0" in httpx.get(f"{base_url}/metrics").text
        [beat] = status()["workers"]
        assert beat["alive"] is True
        assert beat["pid"] == worker.pid
        assert beat["items_held"] == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=30)[0]
    assert worker.returncode == 0, output
    assert status()["workers"] == []  # a worker that stops cleanly removes its heartbeat


def test_admin_status_shows_the_backlog_per_account(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock, database_url: str
) -> None:
    headers = auth(api)
    # No callback URL configured: the three messages wait.
    assert request(api, headers, "deactivation", [msisdn(1), msisdn(2), msisdn(3)]).is_success
    drain(quiet, engine, clock)
    runner = CliRunner()
    shown = runner.invoke(
        cli_app, ["admin", "status", "--json"], env={"M2M_DATABASE_URL": database_url}
    )
    assert shown.exit_code == 0, shown.output
    found = json.loads(shown.output)
    assert found["workers"] == []
    assert found["queues"]["items_pending"] == 0
    assert found["queues"]["messages_pending"] == 3
    assert found["queues"]["oldest_message_age_seconds"] >= 0
    [account] = found["messages_waiting_by_account"]
    assert (account["name"], account["messages_pending"]) == (sandbox.ACCOUNT_NAME, 3)
    table = runner.invoke(cli_app, ["admin", "status"], env={"M2M_DATABASE_URL": database_url})
    assert table.exit_code == 0, table.output
    assert "Messages waiting by account" in table.output
    assert "Workers alive: 0" in table.output
