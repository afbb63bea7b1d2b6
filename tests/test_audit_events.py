"""GET /m2m/1.0.0/audit-events (SQLite and PostgreSQL): what the API records of its own changes
(once, by the application or token that made them, never a secret), and the listing: the
caller's account only, newest first, filters, keyset pages through Link, bad input as 422."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from m2m.audit import Actor, ActorKind
from m2m.clock import ManualClock
from m2m.paging import encode_cursor
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET
from m2m.storage import accounts as account_store
from m2m.storage import audit as audit_store
from m2m.storage.engine import write_transaction
from tests.support.api import M2M, auth, configure, msisdn, request
from tests.support.audit import AuditWatch, stored_text
from tests.support.tenants import Tenant

EVENTS = f"{M2M}/audit-events"
ICCID_A = "8932000000000000017"
ICCID_B = "8932000000000000025"


def sandbox_id(engine: Engine) -> int:
    with engine.connect() as conn:
        found = account_store.find_sandbox_account(conn)
    assert found is not None
    return found.id


def tenant_auth(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.permanent_token}", "x-api-key": tenant.api_key}


# --- what the API records -------------------------------------------------------------------


def test_a_callback_configuration_is_recorded_once_by_its_application_without_its_values(
    api: TestClient, engine: Engine
) -> None:
    watch = AuditWatch(engine)
    headers = {**auth(api), "X-Request-ID": "req-1"}
    secret = "Bearer receiver-secret-value-1"
    assert configure(api, headers, "http://127.0.0.1:9/a", {"Authorization": secret}).is_success

    entry = watch.one("callback.configured")
    assert (entry["actor_kind"], entry["actor"]) == ("application", CLIENT_ID)
    assert entry["request_id"] == "req-1"
    assert entry["account_id"] == sandbox_id(engine)
    assert entry["changes"] == {
        "url": {"before": None, "after": "http://127.0.0.1:9/a"},
        "headers": {"before": {}, "after": {"Authorization": "[redacted]"}},
    }

    # Same name, another value: said so, by name only.
    other = "Bearer receiver-secret-value-2"
    assert configure(api, headers, "http://127.0.0.1:9/a", {"Authorization": other}).is_success
    entry = watch.one("callback.configured")
    assert entry["changes"] == {
        "header_values_changed": {"before": None, "after": ["Authorization"]}
    }
    text = stored_text(engine)
    assert "receiver-secret-value" not in text
    assert CLIENT_SECRET not in text
    assert API_KEY not in text


def test_a_lifecycle_request_is_recorded_once_not_per_sim(api: TestClient, engine: Engine) -> None:
    watch = AuditWatch(engine)
    devices = [msisdn(1), msisdn(2), msisdn(3)]
    response = request(api, auth(api), "deactivation", devices)
    assert response.status_code == 202
    tracking_number = response.json()["TrackingNumber"]

    entry = watch.one("request.deactivation")
    assert (entry["subject_kind"], entry["subject"]) == ("request", tracking_number)
    assert entry["changes"] == {
        "operation": {"before": None, "after": "deactivation"},
        "devices": {"before": None, "after": 3},
    }
    # None was sent: the server gave the call one, the answer's, and recorded it.
    assert entry["request_id"] == response.headers["x-request-id"]


def test_a_permanent_token_is_named_and_a_request_id_kept_only_when_sane(
    client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    watch = AuditWatch(engine)
    headers = {**tenant_auth(tenant), "X-Request-ID": "x" * 101}
    answer = configure(client, headers, "http://127.0.0.1:9/t")
    assert answer.is_success
    entry = watch.one("callback.configured")
    assert (entry["actor_kind"], entry["actor"]) == ("token", "ci")
    # Not the caller's (too long): the one the server gave the call instead, as answered.
    assert entry["request_id"] == answer.headers["x-request-id"]
    assert entry["request_id"] != "x" * 101
    assert tenant.permanent_token not in stored_text(engine)


def test_getting_and_revoking_a_temporary_token_and_reading_record_nothing(
    api: TestClient, engine: Engine
) -> None:
    watch = AuditWatch(engine)
    headers = auth(api)
    api.get(f"{M2M}/simcards", params={"msisdn": "32470000001"}, headers=headers)
    api.post(
        "/revoke",
        data={
            "token": headers["Authorization"].removeprefix("Bearer "),
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert watch.new() == []


def test_a_refused_change_records_nothing(api: TestClient, engine: Engine) -> None:
    watch = AuditWatch(engine)
    assert configure(api, auth(api), "ftp://nowhere").status_code == 422
    assert request(api, auth(api), "activation", []).status_code == 422
    assert watch.new() == []


# --- the listing ----------------------------------------------------------------------------


def add_event(
    engine: Engine,
    clock: ManualClock,
    account_id: int,
    action: str,
    *,
    subject: tuple[str, str] = ("sim", ICCID_A),
    actor: Actor = Actor(ActorKind.APPLICATION, "app-1"),
) -> None:
    with write_transaction(engine) as conn:
        audit_store.record(
            conn,
            account_id=account_id,
            actor=actor,
            action=action,
            subject_kind=subject[0],
            subject=subject[1],
            changes={"n": {"before": None, "after": action}},
            now=clock.now(),
        )
    clock.advance(60)


def listed(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = client.get(EVENTS, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json())


def test_the_account_s_events_newest_first_and_never_another_account_s(
    client: TestClient, engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    start = clock.now()
    add_event(engine, clock, tenant.account_id, "sim.updated")
    add_event(engine, clock, other_tenant.account_id, "sim.updated", subject=("sim", ICCID_B))
    add_event(engine, clock, tenant.account_id, "request.activation", subject=("request", "t-1"))

    events = listed(client, tenant_auth(tenant))
    # make_tenant's own entries (account, application, token created) come first in time.
    assert [e["action"] for e in events[:2]] == ["request.activation", "sim.updated"]
    assert all(e["subject"]["id"] != ICCID_B for e in events)
    newest = events[0]
    assert newest["actor"] == {"kind": "application", "name": "app-1"}
    assert newest["subject"] == {"kind": "request", "id": "t-1"}
    assert newest["changes"] == {"n": {"before": None, "after": "request.activation"}}
    assert newest["request_id"] is None
    assert newest["occurred_at"].startswith(
        (start + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M")
    )
    # The other account sees its own, and not the first's, even by the first's SIM.
    theirs = listed(client, tenant_auth(other_tenant), sim=ICCID_A)
    assert theirs == []


def test_filters_by_sim_actor_action_and_time(
    client: TestClient, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    account = tenant.account_id
    first = clock.now()
    add_event(engine, clock, account, "sim.updated")
    add_event(engine, clock, account, "sim.updated", subject=("sim", ICCID_B))
    add_event(
        engine,
        clock,
        account,
        "request.activation",
        subject=("request", "t-1"),
        actor=Actor(ActorKind.CONSOLE, "ops@acme.example"),
    )
    add_event(engine, clock, account, "request.termination", subject=("request", "t-2"))
    headers = tenant_auth(tenant)

    def actions(**params: Any) -> list[str]:
        return [e["action"] + ":" + e["subject"]["id"] for e in listed(client, headers, **params)]

    assert actions(sim=ICCID_B) == [f"sim.updated:{ICCID_B}"]
    assert actions(actor="ops@acme.example") == ["request.activation:t-1"]
    assert actions(action="request.") == ["request.termination:t-2", "request.activation:t-1"]
    assert actions(action=["request.termination", "sim.updated"]) == [
        "request.termination:t-2",
        f"sim.updated:{ICCID_B}",
        f"sim.updated:{ICCID_A}",
    ]
    since = (first + timedelta(seconds=30)).isoformat()
    until = (first + timedelta(seconds=150)).replace(tzinfo=None).isoformat()  # UTC
    assert actions(since=since, until=until, action="sim.") == [f"sim.updated:{ICCID_B}"]


def links_of(response: httpx.Response) -> str | None:
    return response.links.get("next", {}).get("url")


def test_pages_follow_the_link_to_the_end_and_stay_put_while_events_arrive(
    client: TestClient, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    for n in range(7):
        add_event(engine, clock, tenant.account_id, f"sim.n{n}")
    headers = tenant_auth(tenant)
    seen: list[str] = []
    url: str | None = f"{EVENTS}?action=sim.&limit=3"
    pages = 0
    while url is not None:
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        seen += [e["action"] for e in response.json()]
        url = links_of(response)
        pages += 1
        # A new event while paging is not seen on later pages (they go back in time).
        add_event(engine, clock, tenant.account_id, "sim.late")
    assert seen == [f"sim.n{n}" for n in reversed(range(7))]
    assert pages == 3
    assert "action=sim." in str(
        links_of(client.get(f"{EVENTS}?action=sim.&limit=1", headers=headers))
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("colour=red", "query.colour"),
        ("actor=a&actor=b", "query.actor"),
        ("limit=0", "query.limit"),
        ("limit=1001", "query.limit"),
        ("limit=many", "query.limit"),
        ("limit=1_000", "query.limit"),
        ("since=yesterday", "query.since"),
        ("until=0.5", "query.until"),
        ("since=2026-12-01", "query.since"),
        ("sim=123", "query.sim"),
        ("action=sim%20updated", "query.action"),
        ("cursor=nonsense", "query.cursor"),
        (f"cursor={encode_cursor({'id': 2**70})}", "query.cursor"),
        (f"cursor={encode_cursor({'id': True})}", "query.cursor"),
    ],
)
def test_bad_input_is_a_422_naming_it(
    client: TestClient, tenant: Tenant, query: str, field: str
) -> None:
    response = client.get(f"{EVENTS}?{query}", headers=tenant_auth(tenant))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert field in [d["field"] for d in body["details"]]


def test_without_credentials_nothing_is_listed(client: TestClient) -> None:
    assert client.get(EVENTS).status_code == 401
    assert client.get(f"{EVENTS}?colour=red").status_code == 401  # credentials before inputs
