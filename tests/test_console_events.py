"""The console's Events page on both databases: the account's events newest first, with the
envelope of each; filters by type, SIM (ICCID or MSISDN) and time; paging; another account's
events never shown; bad filters a 400 that says why."""

from __future__ import annotations

import html
import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from m2m.audit import ADMIN_CLI
from m2m.clock import ManualClock
from m2m.identifiers import IdentifierType
from m2m.intake import Device, accept_request
from m2m.lifecycle import Operation
from m2m.settings import Settings
from m2m.storage import events as event_store
from m2m.storage.engine import write_transaction
from m2m.storage.tables import sim_cards
from tests.support.console import sign_in
from tests.support.sims import add_sim
from tests.support.tenants import Tenant
from tests.support.worker import drain

ENVELOPE = re.compile(r'<pre class="envelope"[^>]*>(.*?)</pre>', re.S)


@pytest.fixture
def csrf(console: TestClient, engine: Engine, clock: ManualClock) -> str:
    return sign_in(console, engine, clock)


def _iccid(engine: Engine, msisdn: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(select(sim_cards.c.iccid).where(sim_cards.c.msisdn == msisdn)).scalar_one()
        )


def _request(
    engine: Engine, clock: ManualClock, account_id: int, operation: Operation, *msisdns: str
) -> str:
    return accept_request(
        engine,
        clock,
        account_id,
        operation,
        [Device(m, IdentifierType.MSISDN) for m in msisdns],
        "cb",
        actor=ADMIN_CLI,
    )


def envelopes(page: str) -> list[dict[str, object]]:
    """The envelopes the page shows, in its order."""
    return [json.loads(html.unescape(found)) for found in ENVELOPE.findall(page)]


def test_a_deactivation_s_events_are_listed_newest_first_with_their_envelopes(
    console: TestClient, csrf: str, engine: Engine, settings: Settings, clock: ManualClock
) -> None:
    tracking = _request(engine, clock, 1, Operation.DEACTIVATION, "32470000001")
    drain(settings, engine, clock)

    page = console.get("/console/events")
    assert page.status_code == 200
    assert 'aria-current="page">Events<' in page.text
    shown = envelopes(page.text)
    assert [e["type"] for e in shown] == ["request.completed", "sim.state_changed"]
    completed, changed = shown
    assert changed["sim"] == {
        "ICCID": _iccid(engine, "32470000001"),
        "MSISDN": "32470000001",
        "labels": {},
    }
    assert changed["data"] == {
        "from": "Active",
        "to": "Deactivated",
        "cause": "request",
        "TrackingNumber": tracking,
        "operation": "deactivation",
    }
    assert completed["data"]["results"] == {"Success": 1}  # type: ignore[index]
    assert int(str(completed["id"])) > int(str(changed["id"]))
    assert "Active -> Deactivated (deactivation)" in html.unescape(page.text)
    # The same envelope as the API's log answers.
    assert str(changed["occurred_at"]).endswith("Z")
    assert changed["account"] == 1


def test_filters_by_type_sim_and_time(
    console: TestClient, csrf: str, engine: Engine, settings: Settings, clock: ManualClock
) -> None:
    _request(engine, clock, 1, Operation.DEACTIVATION, "32470000001", "32470000002")
    drain(settings, engine, clock)
    clock.advance(600)  # within the session's idle time
    later = clock.now()
    _request(engine, clock, 1, Operation.REACTIVATION, "32470000002")
    drain(settings, engine, clock)

    def shown(**params: str) -> list[tuple[str, str | None]]:
        page = console.get("/console/events", params=params)
        assert page.status_code == 200, page.text
        return [
            (str(e["type"]), e["sim"]["MSISDN"] if e["sim"] else None)  # type: ignore[index]
            for e in envelopes(page.text)
        ]

    assert len(shown()) == 5  # three state changes, two completions
    assert shown(type="request.completed") == [("request.completed", None)] * 2
    assert shown(type="sim.*") == [
        ("sim.state_changed", "32470000002"),
        ("sim.state_changed", "32470000002"),
        ("sim.state_changed", "32470000001"),
    ]
    by_msisdn = shown(sim="32470000002")
    assert by_msisdn == [("sim.state_changed", "32470000002")] * 2
    assert shown(sim=_iccid(engine, "32470000002")) == by_msisdn
    assert shown(sim="+32 470 000 002") == by_msisdn  # as people type it
    assert shown(sim="32470000003") == []  # a SIM of the account without events
    stamp = later.strftime("%Y-%m-%dT%H:%M")
    assert len(shown(since=stamp)) == 2  # the reactivation and its completion
    assert len(shown(until=stamp)) == 3
    assert shown(since=stamp, type="sim.state_changed", sim="32470000002") == [
        ("sim.state_changed", "32470000002")
    ]


def test_another_account_s_events_never_appear(
    console: TestClient,
    csrf: str,
    engine: Engine,
    settings: Settings,
    clock: ManualClock,
    other_tenant: Tenant,
) -> None:
    add_sim(engine, clock, other_tenant.account_id, "32499000001")
    _request(engine, clock, other_tenant.account_id, Operation.ACTIVATION, "32499000001")
    drain(settings, engine, clock)
    with engine.connect() as conn:
        theirs = event_store.read(conn, other_tenant.account_id, after=0, limit=10)
    assert [e.type for e in theirs] == ["sim.state_changed", "request.completed"]

    for params in ({}, {"sim": "32499000001"}, {"sim": _iccid(engine, "32499000001")}):
        page = console.get("/console/events", params=params)
        assert page.status_code == 200
        assert envelopes(page.text) == []
        assert "32499000001" not in page.text.replace('value="32499000001"', "")
        assert "No event matches." in page.text


def test_fifty_to_a_page_older_ones_through_the_pager(
    console: TestClient, csrf: str, engine: Engine, clock: ManualClock
) -> None:
    now = clock.now()
    with write_transaction(engine) as conn:
        event_store.record(
            conn,
            [
                event_store.NewEvent(
                    1,
                    "request.completed",
                    1,
                    now,
                    {
                        "TrackingNumber": f"t-{n}",
                        "operation": "activation",
                        "devices": n,
                        "results": {"Success": n},
                    },
                )
                for n in range(60)
            ],
        )
    first = console.get("/console/events", params={"type": "request.*"})
    numbers = [e["data"]["devices"] for e in envelopes(first.text)]  # type: ignore[index]
    assert numbers == list(range(59, 9, -1))
    older = re.search(r'href="\?([^"]*before=\d+)" rel="next"', first.text)
    assert older, first.text
    second = console.get("/console/events?" + html.unescape(older.group(1)))
    assert [e["data"]["devices"] for e in envelopes(second.text)] == list(range(9, -1, -1))  # type: ignore[index]
    assert 'rel="next"' not in second.text
    assert "← Newest" in second.text


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"type": "sim.unknown"}, "event types offered"),
        ({"sim": "abc"}, "ICCID or MSISDN"),
        ({"sim": "1" * 21}, "ICCID or MSISDN"),
        ({"since": "yesterday"}, "2026-12-01T04:00"),
        ({"before": "0"}, "start from the newest"),
        ({"before": str(2**64)}, "start from the newest"),
    ],
)
def test_a_bad_filter_is_a_400_that_says_why(
    console: TestClient, csrf: str, params: dict[str, str], problem: str
) -> None:
    response = console.get("/console/events", params=params)
    assert response.status_code == 400
    assert problem in response.text


def test_the_page_needs_a_signed_in_user(console: TestClient) -> None:
    response = console.get("/console/events", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login?next=/console/events")
