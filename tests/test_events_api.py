"""GET /m2m/1.0.0/events on both databases: pages oldest first by cursor (Link rel=next while
pages are full, the cursor even on an empty page), filters by type (families too) and SIM,
the caller's account only, clear 422s; a consumer's cursor across the admin purge; the catalog
under the OpenAPI document's ``webhooks``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from m2m.cli.main import app as cli_app
from m2m.clock import ManualClock
from m2m.events import EventType, typed_envelope
from m2m.lifecycle import Operation
from m2m.settings import Settings
from m2m.storage import events as event_store
from m2m.storage import retention
from m2m.storage.engine import write_transaction
from m2m.storage.tables import sim_cards
from tests.support.api import M2M, access_token, auth
from tests.support.intake import accept
from tests.support.sims import add_active_sims
from tests.support.tenants import Tenant
from tests.support.worker import drain

SANDBOX_ACCOUNT = 1
LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def _deactivate(
    quiet: Settings, engine: Engine, clock: ManualClock, count: int, first: int = 0
) -> list[str]:
    """``count`` new Active SIMs of the sandbox account (numbered from ``first``) deactivated by
    one request (worker run)."""
    msisdns = add_active_sims(engine, count, clock.now(), account_id=SANDBOX_ACCOUNT, first=first)
    accept(engine, clock, SANDBOX_ACCOUNT, Operation.DEACTIVATION, msisdns)
    drain(quiet, engine, clock)
    return msisdns


def _iccid(engine: Engine, msisdn: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(select(sim_cards.c.iccid).where(sim_cards.c.msisdn == msisdn)).scalar()
        )


def _get(api: TestClient, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    response = api.get(f"{M2M}/events{query}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_pages_oldest_first_by_cursor(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock
) -> None:
    _deactivate(quiet, engine, clock, 5)
    headers = auth(api)

    seen: list[dict[str, Any]] = []
    url = f"{M2M}/events?limit=2"
    while True:
        response = api.get(url, headers=headers)
        assert response.status_code == 200
        page = response.json()
        # The last event's id; on an empty page, the cursor it was asked with.
        assert page["cursor"] == (page["events"][-1]["id"] if page["events"] else seen[-1]["id"])
        seen += page["events"]
        link = response.headers.get("link")
        if len(page["events"]) < 2:
            assert link is None  # caught up
            break
        match = LINK.match(link or "")
        assert match, link
        assert f"after={page['cursor']}" in match["url"]
        assert "limit=2" in match["url"]
        url = match["url"].removeprefix("http://testserver")

    assert [e["type"] for e in seen] == ["sim.state_changed"] * 5 + ["request.completed"]
    ids = [int(e["id"]) for e in seen]
    assert ids == sorted(ids)
    assert len(set(ids)) == 6
    first = seen[0]
    assert first["account"] == SANDBOX_ACCOUNT
    assert first["version"] == 1
    assert set(first["sim"]) == {"ICCID", "MSISDN", "labels"}
    assert datetime.fromisoformat(first["occurred_at"]).tzinfo is not None

    # Caught up: an empty page still says where to poll from.
    empty = _get(api, headers, f"?after={seen[-1]['id']}")
    assert empty == {"events": [], "cursor": seen[-1]["id"]}
    assert _get(api, headers, "?after=0")["events"] == seen
    # A new change shows up after the cursor, and only it.
    _deactivate(quiet, engine, clock, 1, first=100)
    later = _get(api, headers, f"?after={empty['cursor']}")
    assert [e["type"] for e in later["events"]] == ["sim.state_changed", "request.completed"]


def test_filters_by_type_family_and_sim(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock
) -> None:
    msisdns = _deactivate(quiet, engine, clock, 3)
    headers = auth(api)

    def types(query: str) -> list[str]:
        return [e["type"] for e in _get(api, headers, query)["events"]]

    assert types("?type=sim.*") == ["sim.state_changed"] * 3
    assert types("?type=request.completed") == ["request.completed"]
    assert types("?type=request.completed&type=sim.state_changed") == ["sim.state_changed"] * 3 + [
        "request.completed"
    ]
    assert types("?type=*") == types("")
    assert types("?type=usage.*") == []  # a family with no type yet
    assert types("?type=sim.updated") == []

    iccid = _iccid(engine, msisdns[1])
    one = _get(api, headers, f"?sim={iccid}")["events"]
    assert [(e["type"], e["sim"]["ICCID"]) for e in one] == [("sim.state_changed", iccid)]
    assert _get(api, headers, f"?sim={iccid}&type=request.*")["events"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?type=sim.state_change", "type"),
        ("?type=sim*", "type"),
        ("?after=abc", "after"),
        ("?after=-1", "after"),
        ("?after=99999999999999999999", "after"),
        ("?type=", "type"),
        ("?" + "&".join(["type=sim.*"] * 21), "type"),
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=10.0", "limit"),  # an integer, not whatever reads as one
        ("?sim=123", "sim"),
        ("?cursor=5", "cursor"),
    ],
)
def test_bad_parameters_are_422(api: TestClient, query: str, field: str) -> None:
    response = api.get(f"{M2M}/events{query}", headers=auth(api))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert field in response.text


def test_a_cursor_past_the_last_possible_id_reads_nothing(api: TestClient) -> None:
    assert _get(api, auth(api), "?after=9999999999999999999") == {
        "events": [],
        "cursor": str(2**63 - 1),
    }


def test_credentials_are_required(api: TestClient) -> None:
    assert api.get(f"{M2M}/events").status_code == 401


def test_a_caller_sees_only_its_own_accounts_events(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    msisdns = _deactivate(quiet, engine, clock, 2)
    theirs = {
        "Authorization": f"Bearer {access_token(api, tenant.client_id, tenant.client_secret)}",
        "x-api-key": tenant.api_key,
    }
    assert _get(api, theirs) == {"events": [], "cursor": "0"}
    # Naming the other account's SIM gives nothing either (and no hint that it exists).
    assert _get(api, theirs, f"?sim={_iccid(engine, msisdns[0])}")["events"] == []
    mine = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id, first=50)
    accept(engine, clock, tenant.account_id, Operation.DEACTIVATION, mine)
    drain(quiet, engine, clock)
    assert {e["account"] for e in _get(api, theirs)["events"]} == {tenant.account_id}
    assert {e["account"] for e in _get(api, auth(api))["events"]} == {SANDBOX_ACCOUNT}


def test_a_cursor_older_than_the_purge_reads_on_from_the_oldest_kept(
    api: TestClient, engine: Engine, database_url: str
) -> None:
    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        event_store.record(
            conn,
            [
                event_store.NewEvent(
                    account_id=SANDBOX_ACCOUNT,
                    type="request.completed",
                    version=1,
                    occurred_at=now - timedelta(days=days),
                    data={"age_days": days},
                )
                for days in (45, 40, 31, 2, 1)
            ],
        )
    headers = auth(api)
    first = _get(api, headers, "?limit=1")
    assert first["events"][0]["data"] == {"age_days": 45}

    result = CliRunner().invoke(
        cli_app, ["admin", "events", "purge", "--json"], env={"M2M_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    assert '"deleted_events": 3' in result.stdout

    rest = _get(api, headers, f"?after={first['cursor']}")
    assert [e["data"] for e in rest["events"]] == [{"age_days": 2}, {"age_days": 1}]


def test_a_consumer_walking_pages_while_a_purge_runs_skips_nothing_kept(
    api: TestClient, engine: Engine
) -> None:
    """A consumer reads pages of 2; between two of its pages the purge deletes the old events,
    some it has read and some it has not (those are gone by the retention rule), and new ones
    arrive: from its cursor it then reads every kept event after it, each once, in order."""
    now = datetime.now(UTC)

    def store(ages: list[int]) -> None:
        with write_transaction(engine) as conn:
            event_store.record(
                conn,
                [
                    event_store.NewEvent(
                        account_id=SANDBOX_ACCOUNT,
                        type="request.completed",
                        version=1,
                        occurred_at=now - timedelta(days=age),
                        data={"age": age},
                    )
                    for age in ages
                ],
            )

    store([50, 49, 48, 47, 46, 20, 10, 5])
    headers = auth(api)
    first = _get(api, headers, "?limit=2")
    assert [e["data"]["age"] for e in first["events"]] == [50, 49]

    with write_transaction(engine) as conn:
        # The purge's own batches (of 2 here), oldest first: 50 ... 46 go.
        while retention.purge_events(conn, now - timedelta(days=30), limit=2):
            pass
    store([3, 2, 1])

    seen: list[int] = []
    cursor = first["cursor"]
    while True:
        page = _get(api, headers, f"?limit=2&after={cursor}")
        seen += [e["data"]["age"] for e in page["events"]]
        cursor = page["cursor"]
        if len(page["events"]) < 2:
            break
    assert seen == [20, 10, 5, 3, 2, 1]
    with engine.connect() as conn:
        kept = event_store.read(conn, SANDBOX_ACCOUNT, after=0, limit=100)
    assert [e.data["age"] for e in kept] == seen
    assert cursor == str(kept[-1].id)


def test_the_purge_takes_its_age_from_the_setting_or_the_option(
    engine: Engine, database_url: str, tenant: Tenant
) -> None:
    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        event_store.record(
            conn,
            [
                event_store.NewEvent(
                    tenant.account_id, "request.completed", 1, now - timedelta(days=d), {}
                )
                for d in (9, 5)
            ],
        )

    def purge(*args: str, env: dict[str, str] | None = None) -> str:
        result = CliRunner().invoke(
            cli_app,
            ["admin", "events", "purge", *args],
            env={"M2M_DATABASE_URL": database_url, **(env or {})},
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    assert "Deleted 0 events" in purge()  # the default: 30 days
    assert "Deleted 1 events" in purge(env={"M2M_EVENT_RETENTION_DAYS": "7"})
    assert "Deleted 1 events" in purge("--older-than", "3")
    result = CliRunner().invoke(
        cli_app,
        ["admin", "events", "purge", "--older-than", "0"],
        env={"M2M_DATABASE_URL": database_url},
    )
    assert result.exit_code == 2


def test_the_catalog_is_in_the_openapi_webhooks(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock
) -> None:
    document = api.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    webhooks = document["webhooks"]
    assert set(webhooks) == {t.value for t in EventType}
    schemas = document["components"]["schemas"]
    for event_type in EventType:
        operation = webhooks[event_type.value]["post"]
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = schemas[ref.rsplit("/", 1)[-1]]
        assert schema["properties"]["type"]["const"] == event_type.value
        assert "$ref" in schema["properties"]["data"]
        assert set(operation["responses"]) == {"2XX"}
    # What the log serves is what the catalog documents.
    _deactivate(quiet, engine, clock, 1)
    for event in _get(api, auth(api))["events"]:
        typed_envelope(EventType(event["type"])).model_validate(event)
