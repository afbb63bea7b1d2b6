"""Helpers for the console's tests: a console client over the real app, logging in, CSRF tokens
read from the rendered forms (as a browser would send them)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from m2m import credentials
from m2m.asgi import create_app
from m2m.clock import ManualClock
from m2m.console.auth import SESSION_COOKIE
from m2m.console.csrf import token_for_session
from m2m.sandbox import DEMO_EMAIL, DEMO_PASSWORD, DEMO_PASSWORD_HASH
from m2m.settings import Settings
from m2m.storage import console as console_store
from m2m.storage.engine import write_transaction

_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def submit_login(
    client: TestClient,
    password: str = DEMO_PASSWORD,
    email: str = DEMO_EMAIL,
    next_path: str | None = None,
) -> httpx.Response:
    """Fill in and send the login form, as a browser would (its CSRF token included)."""
    form = client.get("/console/login")
    fields = {"csrf_token": csrf_of(form.text), "email": email, "password": password}
    if next_path is not None:
        fields["next"] = next_path
    return client.post("/console/login", data=fields, follow_redirects=False)


def log_in(client: TestClient, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> str:
    """Log in through the login form; returns a CSRF token of the new session."""
    response = submit_login(client, password, email)
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/console/token").text)


def sign_in(client: TestClient, engine: Engine, clock: ManualClock, email: str = DEMO_EMAIL) -> str:
    """Open a session for the user directly (no Argon2 check: the login itself is tested in
    test_console_auth); returns the session's CSRF token."""
    token = credentials.new_secret()
    now = clock.now()
    with write_transaction(engine) as conn:
        user = console_store.find_user(conn, email)
        assert user is not None
        console_store.add_session(
            conn, user.id, credentials.digest(token), now, now + timedelta(hours=1)
        )
    client.cookies.set(SESSION_COOKIE, token)
    return token_for_session(token)


def add_user(engine: Engine, clock: ManualClock, account_id: int, email: str) -> None:
    """A console user whose password is the demo one (its hash is precomputed: no Argon2 cost)."""
    with write_transaction(engine) as conn:
        console_store.add_user(conn, account_id, email, DEMO_PASSWORD_HASH, clock.now())


@contextmanager
def console_client(
    settings: Settings, engine: Engine, clock: ManualClock, base_url: str = "http://testserver"
) -> Iterator[TestClient]:
    """The whole app without a worker of its own (tests run one when they need it)."""
    app = create_app(
        settings.model_copy(update={"embedded_worker": False}), engine=engine, clock=clock
    )
    with TestClient(app, base_url=base_url) as client:
        yield client
