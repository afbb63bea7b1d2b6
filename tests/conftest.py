"""Shared fixtures: every test gets its own real database, a controllable clock, the real app.

Databases: every test that uses the ``database_url`` fixture runs twice, on SQLite and on
PostgreSQL, each time on a database of its own, copied from a template migrated once per session
(migrating per test would dominate the suite's time): a file copy for SQLite, ``CREATE DATABASE
… TEMPLATE`` for PostgreSQL.

PostgreSQL: the server at ``M2M_TEST_POSTGRES_URL`` (default: the local one these machines run,
``postgresql://postgres@127.0.0.1:5432/postgres``, trust authentication; ``.ci/run`` starts it if
it is down). The role needs CREATEDB. Point the variable at another server to use that one.

Only fixtures live here; the helpers test files share (and these fixtures use) are in
``tests/support/``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from m2m import sandbox
from m2m.asgi import create_app
from m2m.clock import ManualClock
from m2m.settings import Settings
from m2m.storage.engine import make_engine, write_transaction
from m2m.storage.migrate import upgrade
from tests.support.console import console_client
from tests.support.constants import POSTGRES_URL, SECRET_KEY
from tests.support.receiver import Receiver, run_receiver
from tests.support.servers import free_port, run_server
from tests.support.tenants import Tenant, make_tenant


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "m2m.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def _postgres_admin() -> Engine:
    admin = create_engine(
        make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect():
            pass
    except OperationalError as error:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {POSTGRES_URL}: start it (.ci/run does) or set "
            "M2M_TEST_POSTGRES_URL to a server where this role may create databases."
        ) from error
    return admin


def _database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_template(worker_id: str) -> Iterator[str]:
    """A migrated PostgreSQL database to clone, one per xdist worker."""
    admin = _postgres_admin()
    name = f"m2m_test_template_{worker_id}_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(_database(POSTGRES_URL, name))
    upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("template_db")
        path = tmp_path / "m2m.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    source: str = request.getfixturevalue("postgres_template")
    name = f"m2m_test_{uuid.uuid4().hex[:16]}"
    admin = _postgres_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
    try:
        yield _database(POSTGRES_URL, name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        sandbox=True,
        database_url=database_url,
        data_dir=tmp_path,
        secret_key=SECRET_KEY,
        simulator_latency_seconds=0,
        worker_poll_seconds=0.05,
        # Usage the tests write themselves: none simulated beside it.
        sandbox_usage=False,
    )


@pytest.fixture
def app(settings: Settings, engine: Engine, clock: ManualClock) -> FastAPI:
    return create_app(settings, engine=engine, clock=clock)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def quiet(settings: Settings) -> Settings:
    """Settings without a worker inside the app: the test runs one step by step (or a process)."""
    return settings.model_copy(update={"embedded_worker": False})


@pytest.fixture
def api(quiet: Settings, engine: Engine, clock: ManualClock, seeded: None) -> Iterator[TestClient]:
    """The app over the sandbox's demo data, with no worker of its own."""
    with TestClient(create_app(quiet, engine=engine, clock=clock)) as test_client:
        yield test_client


@pytest.fixture
def tenant(engine: Engine, clock: ManualClock) -> Tenant:
    return make_tenant(engine, clock, "Tenant A")


@pytest.fixture
def other_tenant(engine: Engine, clock: ManualClock) -> Tenant:
    return make_tenant(engine, clock, "Tenant B")


@pytest.fixture
def seeded(engine: Engine, clock: ManualClock) -> None:
    """The sandbox demo account and its 100 SIMs."""
    with write_transaction(engine) as conn:
        sandbox.seed(conn, clock.now())


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[str]:
    with run_server(app, free_port()) as base_url:
        yield base_url


@pytest.fixture
def console(
    settings: Settings, engine: Engine, clock: ManualClock, seeded: None
) -> Iterator[TestClient]:
    """The whole app over the sandbox's data, for the web console's tests (no worker: tests
    run one when they need it)."""
    with console_client(settings, engine, clock) as client:
        yield client


@pytest.fixture
def sandbox_server(app: FastAPI, seeded: None) -> Iterator[str]:
    """The sandbox's demo account and SIMs, served on loopback with the app's worker running."""
    with run_server(app, free_port(), lifespan="on") as base_url:
        yield base_url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with run_receiver() as running:
        yield running
