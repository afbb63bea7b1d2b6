"""Event subscriptions in the console, next to the callback, on both databases: created from a
form (the signing secret shown once, never stored), listed on the Callback page, paused and
resumed, their secret rotated, replayed since a time, deleted; each one's page shows its recent
deliveries and their attempts; refused forms say why; another account's are never reachable."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from m2m.callbacks.signing import subscription_signing_secret
from m2m.clock import ManualClock
from m2m.settings import Settings
from m2m.storage import event_subscriptions as subscription_store
from m2m.storage import events as event_store
from m2m.storage import outbox
from m2m.storage.engine import write_transaction
from m2m.storage.tables import audit_events, event_subscriptions
from tests.support.console import sign_in
from tests.support.constants import SECRET_KEY
from tests.support.tenants import Tenant

SANDBOX_ACCOUNT = 1
URL = "http://127.0.0.1:9/events"  # loopback: allowed in the sandbox
SHOWN_ID = re.compile(r"sub_[0-9a-f]{24}")
SHOWN_SECRET = re.compile(r'<code class="secret" data-secret>(whsec_[^<]+)</code>')


@pytest.fixture
def csrf(console: TestClient, engine: Engine, clock: ManualClock) -> str:
    return sign_in(console, engine, clock)


def subscribe(console: TestClient, csrf: str, **fields: object) -> tuple[str, str]:
    """Create one through the form; (its public id, the secret the page showed)."""
    data = {"csrf_token": csrf, "url": URL, "event_type": ["sim.*"], **fields}
    page = console.post("/console/callback/subscriptions", data=data)
    assert page.status_code == 200, page.text
    assert "will not be shown again" in page.text
    public_id = SHOWN_ID.search(page.text)
    secret = SHOWN_SECRET.search(page.text)
    assert public_id
    assert secret
    return public_id.group(0), secret.group(1)


def stored(engine: Engine, public_id: str) -> subscription_store.Subscription:
    with engine.connect() as conn:
        found = subscription_store.get(conn, SANDBOX_ACCOUNT, public_id)
    assert found is not None
    return found


def test_a_subscription_made_in_the_console_shows_its_secret_once(
    console: TestClient, csrf: str, engine: Engine
) -> None:
    form = console.get("/console/callback/subscriptions/new")
    assert form.status_code == 200
    public_id, secret = subscribe(
        console,
        csrf,
        event_type=["sim.state_changed", "request.*"],
        label_filter="site=ghent",
        header_name=["x-team", ""],
        header_value=["fleet", ""],
    )
    assert secret == subscription_signing_secret(SECRET_KEY, public_id, 1)
    made = stored(engine, public_id)
    assert made.url == URL
    assert made.event_types == ["sim.state_changed", "request.*"]
    assert made.label_filter == {"site": "ghent"}
    assert made.headers == {"x-team": "fleet"}
    assert made.status == "enabled"
    with engine.connect() as conn:
        row = conn.execute(select(event_subscriptions)).one()
        audit = conn.execute(select(audit_events.c.action, audit_events.c.changes)).all()
    assert secret not in str(row._mapping)  # derived, never stored
    assert ("event_subscription.created", secret) not in [(a, str(c)) for a, c in audit]
    assert all(secret not in str(changes) for _, changes in audit)

    listed = console.get("/console/callback")
    assert public_id in listed.text
    assert "sim.state_changed, request.*" in listed.text
    assert secret not in listed.text
    page = console.get(f"/console/callback/subscriptions/{public_id}")
    assert page.status_code == 200
    assert "x-team" in page.text
    assert "fleet" not in page.text  # header values are masked
    assert secret not in page.text
    assert "Nothing sent yet." in page.text


def test_pause_resume_rotate_replay_and_delete(
    console: TestClient, csrf: str, engine: Engine, clock: ManualClock
) -> None:
    public_id, first_secret = subscribe(console, csrf)
    base = f"/console/callback/subscriptions/{public_id}"
    token = {"csrf_token": csrf}

    assert console.post(f"{base}/pause", data=token, follow_redirects=False).status_code == 303
    assert stored(engine, public_id).status == "paused"
    assert "Resume" in console.get(base).text
    console.post(f"{base}/resume", data=token)
    assert stored(engine, public_id).status == "enabled"

    rotated = console.post(f"{base}/signing-secret", data=token)
    assert rotated.status_code == 200
    new_secret = SHOWN_SECRET.search(rotated.text)
    assert new_secret
    assert new_secret.group(1) == subscription_signing_secret(SECRET_KEY, public_id, 2)
    assert new_secret.group(1) != first_secret
    assert stored(engine, public_id).signing_key_version == 2

    # Events stored before the subscription: a replay since then moves its cursor back to them.
    earlier = clock.now() - timedelta(hours=1)
    with write_transaction(engine) as conn:
        event_store.record(
            conn,
            [
                event_store.NewEvent(SANDBOX_ACCOUNT, "sim.updated", 1, earlier, {"n": n})
                for n in range(3)
            ],
        )
        first_id = min(e.id for e in event_store.read(conn, SANDBOX_ACCOUNT, after=0, limit=10))
        subscription_store.advance(conn, stored(engine, public_id).id, first_id + 2)
    since = (earlier - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    replayed = console.post(
        f"{base}/replay", data={**token, "since": since}, follow_redirects=False
    )
    assert replayed.status_code == 303
    assert stored(engine, public_id).through_event_id == first_id - 1
    refused = console.post(f"{base}/replay", data={**token, "since": "last week"})
    assert refused.status_code == 400
    assert "2026-12-01T04:00" in refused.text

    deleted = console.post(f"{base}/delete", data=token, follow_redirects=False)
    assert deleted.headers["location"] == "/console/callback"
    assert public_id not in console.get("/console/callback").text
    assert console.get(base).status_code == 404


def test_a_subscription_s_page_shows_its_deliveries_and_their_attempts(
    console: TestClient, csrf: str, engine: Engine, clock: ManualClock
) -> None:
    public_id, _ = subscribe(console, csrf)
    subscription = stored(engine, public_id)
    now = clock.now()
    with write_transaction(engine) as conn:
        event_store.record(conn, [event_store.NewEvent(SANDBOX_ACCOUNT, "sim.updated", 1, now, {})])
        logged = subscription_store.events_after(
            conn, SANDBOX_ACCOUNT, subscription.through_event_id, 10
        )
        subscription_store.enqueue(conn, subscription.id, SANDBOX_ACCOUNT, logged, now)
    [delivery] = _deliveries(engine, public_id)
    with write_transaction(engine) as conn:
        outbox.record_attempts(
            conn,
            [
                (
                    "",
                    outbox.AttemptRecord(
                        delivery.id, SANDBOX_ACCOUNT, now, URL, 503, None, 12, False, now
                    ),
                )
            ],
        )
    page = console.get(f"/console/callback/subscriptions/{public_id}").text
    assert f">{logged[0].id}<" in page
    assert "503" in page
    assert "12 ms" in page


def _deliveries(engine: Engine, public_id: str) -> list[subscription_store.DeliveryRow]:
    with engine.connect() as conn:
        return subscription_store.recent_deliveries(conn, SANDBOX_ACCOUNT, public_id)


@pytest.mark.parametrize(
    ("fields", "status", "problem"),
    [
        ({"url": "ftp://example.com/x"}, 422, "http"),
        ({"event_type": []}, 422, "at least one event type"),
        ({"event_type": ["sim.nothing"]}, 422, "unknown event type"),
        ({"label_filter": "site"}, 422, "key=value"),
        ({"header_name": ["Cookie"], "header_value": ["x"]}, 422, "x-"),
    ],
)
def test_a_refused_form_says_why_and_keeps_what_was_typed(
    console: TestClient,
    csrf: str,
    engine: Engine,
    fields: dict[str, object],
    status: int,
    problem: str,
) -> None:
    data = {"csrf_token": csrf, "url": URL, "event_type": ["sim.*"], **fields}
    page = console.post("/console/callback/subscriptions", data=data)
    assert page.status_code == status, page.text
    assert problem in page.text
    assert 'role="alert"' in page.text
    with engine.connect() as conn:
        assert subscription_store.list_for_account(conn, SANDBOX_ACCOUNT) == []


def test_another_account_s_subscriptions_are_out_of_reach(
    console: TestClient, csrf: str, engine: Engine, clock: ManualClock, other_tenant: Tenant
) -> None:
    with write_transaction(engine) as conn:
        theirs = subscription_store.create(
            conn,
            other_tenant.account_id,
            url="http://127.0.0.1:9/theirs",
            headers={},
            event_types=["*"],
            label_filter={},
            now=clock.now(),
        )
    base = f"/console/callback/subscriptions/{theirs.public_id}"
    assert theirs.public_id not in console.get("/console/callback").text
    assert console.get(base).status_code == 404
    for action in ("pause", "resume", "signing-secret", "delete"):
        answer = console.post(f"{base}/{action}", data={"csrf_token": csrf})
        assert answer.status_code == 404, action
    replay = console.post(f"{base}/replay", data={"csrf_token": csrf, "since": "2026-01-01T00:00"})
    assert replay.status_code == 404
    with engine.connect() as conn:
        after = subscription_store.get(conn, other_tenant.account_id, theirs.public_id)
    assert after == theirs  # untouched


def test_changes_need_the_form_s_csrf_token(
    console: TestClient, csrf: str, engine: Engine, settings: Settings
) -> None:
    public_id, _ = subscribe(console, csrf)
    answer = console.post(
        f"/console/callback/subscriptions/{public_id}/delete", data={"csrf_token": "forged"}
    )
    assert answer.status_code == 403
    assert stored(engine, public_id).status == "enabled"
    made = console.post("/console/callback/subscriptions", data={"url": URL, "event_type": "*"})
    assert made.status_code == 403


def test_the_callback_page_lists_subscriptions_once_under_a_plain_title(
    console: TestClient, csrf: str
) -> None:
    public_id, _ = subscribe(console, csrf)
    page = console.get("/console/callback").text
    assert "<title>Callback · M2M Cockpit</title>" in page
    assert page.count("<h2>Event subscriptions</h2>") == 1
    assert page.count(f">{public_id}</a>") == 1
