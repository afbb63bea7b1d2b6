"""Database errors that mean "busy, try again" are told apart from bugs, and answered 503."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from m2m import sandbox
from m2m.asgi import create_app
from m2m.clock import ManualClock
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET
from m2m.settings import Settings
from m2m.storage.engine import is_transient, make_engine, write_transaction
from m2m.storage.migrate import upgrade
from tests.support.console import submit_login
from tests.support.constants import SECRET_KEY
from tests.support.servers import free_port

CREDENTIALS = {
    "grant_type": "client_credentials",
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
}


def raised_by(engine: Engine, statement: str) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        conn.execute(text(statement))
    return caught.value


@pytest.fixture
def sandbox_file(tmp_path: Path) -> Path:
    path = tmp_path / "m2m.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with write_transaction(engine) as conn:
        sandbox.seed(conn, ManualClock().now())
    engine.dispose()
    return path


@pytest.fixture
def write_lock_holder(sandbox_file: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding SQLite's write lock, as a large import does for seconds."""
    holder = sqlite3.connect(sandbox_file, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield holder
    holder.close()


def test_a_locked_sqlite_database_is_transient(
    sandbox_file: Path, write_lock_holder: sqlite3.Connection
) -> None:
    engine = make_engine(f"sqlite:///{sandbox_file}", busy_timeout=0.1)
    error = raised_by(engine, "DELETE FROM access_tokens")
    engine.dispose()
    assert is_transient(error)


def test_an_unreachable_postgresql_is_transient() -> None:
    closed_port = free_port()
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{closed_port}/m2m")
    with pytest.raises(OperationalError) as caught:
        engine.connect()
    engine.dispose()
    assert is_transient(caught.value)


def test_a_bug_is_not_transient(engine: Engine) -> None:
    assert not is_transient(raised_by(engine, "SELECT * FROM no_such_table"))
    assert not is_transient(raised_by(engine, "SELEKT 1"))


def test_the_api_answers_503_while_the_write_lock_is_held_and_serves_reads(
    sandbox_file: Path, write_lock_holder: sqlite3.Connection, tmp_path: Path
) -> None:
    url = f"sqlite:///{sandbox_file}"
    settings = Settings(
        sandbox=True, database_url=url, data_dir=tmp_path, secret_key=SECRET_KEY
    ).model_copy(update={"embedded_worker": False, "sandbox_usage": False})
    # No simulated usage: its first round counts today's quarter hours, writes that would race
    # the token below for the lock (0.2 s busy timeout) and fail it by the hour of the day.
    engine = make_engine(url, busy_timeout=0.2)
    write_lock_holder.execute("ROLLBACK")  # a token first, while nothing holds the lock
    with TestClient(create_app(settings, engine=engine)) as client:
        token = client.post("/token", data=CREDENTIALS).json()["access_token"]
        write_lock_holder.execute("BEGIN IMMEDIATE")

        revoke = client.post("/revoke", data={**CREDENTIALS, "token": token})
        assert revoke.status_code == 503
        assert revoke.headers["Retry-After"] == "1"
        assert revoke.json()["error"] == "temporarily_unavailable"
        headers = {"Authorization": f"Bearer {token}", "x-api-key": API_KEY}
        read = client.get("/m2m/1.0.0/simcards?msisdn=32470000001", headers=headers)
        assert read.status_code == 200  # WAL: readers go on while a writer holds the lock
        login = submit_login(client)  # the console's login writes a session
        assert login.status_code == 503
        assert "The database is busy" in login.text

        write_lock_holder.execute("ROLLBACK")
        assert client.post("/revoke", data={**CREDENTIALS, "token": token}).status_code == 200
        assert (
            client.get("/m2m/1.0.0/simcards?msisdn=32470000001", headers=headers).status_code == 401
        )
    engine.dispose()


def test_a_postgresql_server_that_never_answers_fails_the_connection() -> None:
    """A host that takes the connection and says nothing (or drops packets) must not hang every
    command and request: the connection gives up after its timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        probe = (
            "from m2m.storage.engine import make_engine\n"
            f"engine = make_engine('postgresql://postgres@127.0.0.1:{port}/m2m')\n"
            "try:\n"
            "    engine.connect()\n"
            "except Exception as error:\n"
            "    print(type(error).__name__)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
        )
    assert result.stdout.strip() == "OperationalError", result.stderr
