"""Console sessions, CSRF and login throttling, without a browser (on SQLite and PostgreSQL)."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from m2m.clock import ManualClock
from m2m.console import auth
from m2m.console.auth import SESSION_COOKIE
from m2m.console.csrf import LOGIN_COOKIE
from m2m.sandbox import DEMO_EMAIL, DEMO_PASSWORD
from m2m.settings import Settings
from m2m.storage.tables import console_sessions
from tests.support.console import console_client, csrf_of, log_in, submit_login


def cookie_flags(response: httpx.Response, name: str = SESSION_COOKIE) -> set[str]:
    """The attributes of the Set-Cookie for ``name`` (or ``__Host-`` + name)."""
    cookie = next(
        c
        for c in response.headers.get_list("set-cookie")
        if c.startswith((f"{name}=", f"__Host-{name}="))
    )
    return {part.strip().lower() for part in cookie.split(";")[1:]}


def session_cookie_flags(response: httpx.Response) -> set[str]:
    return cookie_flags(response)


def try_login(client: TestClient, password: str, email: str = DEMO_EMAIL) -> int:
    return submit_login(client, password, email).status_code


def test_pages_need_a_login_and_come_back_after_it(console: TestClient) -> None:
    response = console.get("/console/sims?state=Active", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=/console/sims%3Fstate%3DActive"
    # Emails are case-insensitive and surrounding blanks do not count.
    login = submit_login(
        console, email="  Demo@Sandbox.M2M ", next_path="/console/sims?state=Active"
    )
    assert login.status_code == 303
    assert login.headers["location"] == "/console/sims?state=Active"
    assert console.get("/console/sims?state=Active").status_code == 200


def test_session_cookie_is_httponly_samesite_and_not_secure_over_http(console: TestClient) -> None:
    flags = session_cookie_flags(submit_login(console))
    assert {"httponly", "samesite=lax", "path=/console"} <= flags
    assert "secure" not in flags


def test_over_https_the_cookies_are_host_cookies_and_deleted_as_set(
    settings: Settings, engine: Engine, clock: ManualClock, seeded: None
) -> None:
    with console_client(settings, engine, clock, base_url="https://testserver") as client:
        form = client.get("/console/login")
        login_csrf = next(c for c in form.headers.get_list("set-cookie") if "csrf" in c)
        assert login_csrf.startswith(f"__Host-{LOGIN_COOKIE}=")
        assert {"secure", "path=/", "httponly", "samesite=strict"} <= cookie_flags(
            form, LOGIN_COOKIE
        )
        response = submit_login(client)
        assert response.status_code == 303
        assert f"__Host-{SESSION_COOKIE}=" in response.headers["set-cookie"]
        flags = session_cookie_flags(response)
        assert {"secure", "path=/", "httponly", "samesite=lax"} <= flags
        assert not any(flag.startswith("domain") for flag in flags)
        # The login form's cookie is deleted with the attributes it was set with.
        assert "secure" in cookie_flags(response, LOGIN_COOKIE)
        # Signed in, then out: the deleting Set-Cookie is Secure too.
        token = csrf_of(client.get("/console/token").text)
        out = client.post("/console/logout", data={"csrf_token": token}, follow_redirects=False)
        assert out.status_code == 303
        assert {"secure", "path=/", "max-age=0"} <= session_cookie_flags(out)
        assert client.get("/console/", follow_redirects=False).status_code == 303


def test_the_session_id_is_stored_only_as_a_digest(console: TestClient, engine: Engine) -> None:
    log_in(console)
    session_id = console.cookies[SESSION_COOKIE]
    assert len(session_id) >= 43  # 256 bits, base64url
    with engine.connect() as conn:
        stored = conn.execute(select(console_sessions.c.session_digest)).scalars().all()
    assert len(stored) == 1
    assert stored[0] != session_id.encode()
    assert session_id.encode() not in stored[0]


def test_a_wrong_password_or_unknown_email_is_refused_alike(console: TestClient) -> None:
    assert try_login(console, "not-the-password") == 401
    assert try_login(console, DEMO_PASSWORD, email="nobody@example.com") == 401
    assert SESSION_COOKIE not in console.cookies


def test_a_known_and_an_unknown_email_take_the_same_time(
    engine: Engine, clock: ManualClock, seeded: None
) -> None:
    hour = timedelta(hours=1)
    rules = auth.SessionRules(lifetime=hour, idle=hour, lock=timedelta(minutes=15))
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    for trial in range(8):
        for kind, email in (("known", DEMO_EMAIL), ("unknown", f"nobody{trial}@example.com")):
            clock.advance(3600)  # past any throttling of the previous tries
            started = time.perf_counter()
            result = auth.log_in(engine, clock, rules, email, "not-the-password", f"10.0.0.{trial}")
            timings[kind].append(time.perf_counter() - started)
            assert result.session_token is None
            assert result.retry_after == 0
    # The first unknown email also makes the decoy hash: left out, with the first known one.
    known, unknown = (statistics.median(timings[kind][1:]) for kind in ("known", "unknown"))
    assert 0.5 < known / unknown < 2, timings


def test_logout_ends_the_session_on_the_server(console: TestClient) -> None:
    token = log_in(console)
    stolen = console.cookies[SESSION_COOKIE]
    response = console.post("/console/logout", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    # The old cookie, replayed, no longer opens anything.
    console.cookies.set(SESSION_COOKIE, stolen, path="/console")
    assert console.get("/console/", follow_redirects=False).status_code == 303


def test_an_idle_session_ends(console: TestClient, clock: ManualClock, settings: Settings) -> None:
    log_in(console)
    clock.advance(settings.console_idle_minutes * 60 - 1)
    assert console.get("/console/", follow_redirects=False).status_code == 200
    clock.advance(settings.console_idle_minutes * 60 + 1)
    assert console.get("/console/", follow_redirects=False).status_code == 303


def test_every_form_post_needs_the_sessions_csrf_token(console: TestClient) -> None:
    token = log_in(console)
    posts = [
        ("/console/logout", {}),
        ("/console/token/permanent", {"name": "x"}),
        ("/console/api-keys", {}),
        ("/console/callback", {"url": "http://127.0.0.1:9/"}),
        ("/console/callback/signing-secret", {}),
        ("/console/sims/actions", {"operation": "deactivation", "sim": "1"}),
        ("/console/sims/1/edit", {"version": "1", "cost_center": "x"}),
    ]
    for path, data in posts:
        assert console.post(path, data=data).status_code == 403, path
        wrong = {**data, "csrf_token": token[:-2] + "xx"}
        assert console.post(path, data=wrong).status_code == 403, path
    assert "Log out" in console.get("/console/").text  # still logged in: nothing happened


def test_a_csrf_token_of_another_session_is_refused(
    console: TestClient, settings: Settings, engine: Engine, clock: ManualClock
) -> None:
    old_token = log_in(console)
    with console_client(settings, engine, clock) as other:
        log_in(other)  # the same user, another session
        response = other.post(
            "/console/token/permanent", data={"csrf_token": old_token, "name": "x"}
        )
    assert response.status_code == 403


def test_the_login_form_has_its_own_csrf_check(console: TestClient) -> None:
    console.get("/console/login")
    response = console.post(
        "/console/login",
        data={"csrf_token": "forged", "email": DEMO_EMAIL, "password": DEMO_PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert SESSION_COOKIE not in console.cookies


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/console/",
        "/\\evil.example",
        "javascript:alert(1)",
        "/docs",
        "/consolex",
        "http://testserver/console/",
    ],
)
def test_next_never_leaves_the_console(console: TestClient, target: str) -> None:
    response = submit_login(console, next_path=target)
    assert response.headers["location"] == "/console/"


def test_failed_logins_are_slowed_then_locked_then_allowed_again(
    console: TestClient, clock: ManualClock, settings: Settings
) -> None:
    for _ in range(3):
        assert try_login(console, "wrong-password") == 401
    # Now each attempt waits: even the right password is not checked yet.
    assert try_login(console, DEMO_PASSWORD) == 429
    clock.advance(1)
    assert try_login(console, "wrong-password") == 401
    for wait in (2, 4, 8, 16, 32, 64):  # the tenth failure locks the email
        clock.advance(wait)
        assert try_login(console, "wrong-password") == 401
    clock.advance(128)  # what would have been the next wait: still locked
    assert try_login(console, DEMO_PASSWORD) == 429
    clock.advance(settings.console_login_lock_minutes * 60 - 128 - 5)
    locked = submit_login(console)
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["retry-after"]) <= 5
    assert "Try again in" in locked.text
    clock.advance(5)
    assert try_login(console, DEMO_PASSWORD) == 303


def test_throttling_is_per_email_and_per_address(console: TestClient) -> None:
    for _ in range(3):
        assert try_login(console, "wrong-password", email="someone@example.com") == 401
    assert try_login(console, "wrong-password", email="someone@example.com") == 429
    # Another email from the same address still has tries left (the address budget is larger).
    assert try_login(console, DEMO_PASSWORD) == 303
