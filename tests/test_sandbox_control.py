"""The sandbox's control API (``/sandbox/…``): the clock, faults, what was sent, reset; only in
sandbox mode, only for callers on loopback. Every operation on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from m2m import accounts as account_service
from m2m.asgi import create_app
from m2m.audit import ADMIN_CLI
from m2m.clock import ManualClock, parse_duration
from m2m.network import TIMEOUT_MESSAGE
from m2m.sandbox import API_KEY, demo_iccid
from m2m.settings import Settings
from m2m.storage.tables import metadata
from m2m.storage.wipe import KEPT
from tests.support.api import (
    M2M,
    access_token,
    auth,
    configure,
    msisdn,
    request,
    wait_until_finished,
)
from tests.support.constants import SECRET_KEY
from tests.support.receiver import Receiver
from tests.support.waiting import wait_for

LOOPBACK = ("127.0.0.1", 50000)


@pytest.fixture
def sandbox(
    settings: Settings, engine: Engine, clock: ManualClock, seeded: None
) -> Iterator[TestClient]:
    """The sandbox app with its worker, called from loopback (as a test suite beside it)."""
    with TestClient(create_app(settings, engine=engine, clock=clock), client=LOOPBACK) as client:
        yield client


def _finished(client: TestClient, operation: str, n: int, receiver: Receiver) -> dict[str, Any]:
    headers = auth(client)
    assert configure(client, headers, receiver.url).status_code == 204
    tracking = request(client, headers, operation, [msisdn(n)]).json()["TrackingNumber"]
    return wait_until_finished(client, headers, tracking, timeout=30)


# --- present only in the sandbox, only for loopback -------------------------------------------


def test_outside_the_sandbox_the_control_api_does_not_exist(
    settings: Settings, engine: Engine, clock: ManualClock
) -> None:
    production = Settings(
        database_url=settings.database_url, data_dir=settings.data_dir, secret_key=SECRET_KEY
    )
    app = create_app(production, engine=engine, clock=clock)
    with TestClient(app, base_url="https://testserver", client=LOOPBACK) as client:
        for method, path in [
            ("GET", "/sandbox/clock"),
            ("POST", "/sandbox/clock"),
            ("GET", "/sandbox/faults"),
            ("POST", "/sandbox/reset"),
            ("GET", "/sandbox/deliveries"),
            ("DELETE", "/sandbox/faults"),
            ("POST", "/sandbox/scenario"),
        ]:
            answer = client.request(method, path, json={"advance": "1h"})
            assert answer.status_code == 404, (method, path)
            assert answer.json()["error"] == "not_found"
        document = client.get("/openapi.json").json()
    assert not [path for path in document["paths"] if path.startswith("/sandbox")]
    assert "Sandbox control" not in str(document)


def test_the_sandbox_documents_its_control_api(sandbox: TestClient) -> None:
    document = sandbox.get("/openapi.json").json()
    paths = {path for path in document["paths"] if path.startswith("/sandbox")}
    assert paths == {
        "/sandbox/clock",
        "/sandbox/faults",
        "/sandbox/deliveries",
        "/sandbox/reset",
        "/sandbox/scenario",
    }
    for path in paths:
        for operation in document["paths"][path].values():
            assert operation["tags"] == ["Sandbox control"]


def test_callers_beyond_loopback_are_refused_unless_allowed(
    settings: Settings, engine: Engine, clock: ManualClock
) -> None:
    remote = ("192.0.2.10", 40000)
    with TestClient(create_app(settings, engine=engine, clock=clock), client=remote) as client:
        answer = client.get("/sandbox/clock")
        assert answer.status_code == 403
        assert answer.json()["error"] == "sandbox_control_forbidden"
        assert client.post("/sandbox/clock", json={"advance": "1h"}).status_code == 403
    opened = settings.model_copy(update={"sandbox_control_from_anywhere": True})
    with TestClient(create_app(opened, engine=engine, clock=clock), client=remote) as client:
        assert client.get("/sandbox/clock").status_code == 200


# --- the clock --------------------------------------------------------------------------------


def test_the_clock_starts_on_real_time_and_moves_on_demand(
    sandbox: TestClient, clock: ManualClock
) -> None:
    start = sandbox.get("/sandbox/clock").json()
    assert start == {
        "now": clock.now().isoformat().replace("+00:00", "Z"),
        "offset_seconds": 0.0,
        "realtime": True,
    }
    moved = sandbox.post("/sandbox/clock", json={"advance": "1h"}).json()
    assert moved["offset_seconds"] == 3600
    assert not moved["realtime"]
    assert sandbox.post("/sandbox/clock", json={"advance": "+31d"}).json()["offset_seconds"] == (
        3600 + 31 * 86400
    )
    assert sandbox.post("/sandbox/clock", json={"advance": 90}).json()["offset_seconds"] == (
        3690 + 31 * 86400
    )
    target = datetime(2031, 1, 31, 23, 59, 30, tzinfo=UTC)
    answer = sandbox.post("/sandbox/clock", json={"set": "2031-02-01T00:59:30+01:00"}).json()
    assert datetime.fromisoformat(answer["now"]) == target
    assert sandbox.post("/sandbox/clock", json={"realtime": True}).json()["realtime"]
    assert sandbox.get("/sandbox/clock").json() == start


def test_tokens_expire_on_the_sandbox_clock(sandbox: TestClient) -> None:
    token = access_token(sandbox)
    headers = {"Authorization": f"Bearer {token}", "x-api-key": API_KEY}
    assert sandbox.get(f"{M2M}/simcards?msisdn=32470000001", headers=headers).status_code == 200
    sandbox.post("/sandbox/clock", json={"advance": "59m"})
    assert access_token(sandbox) == token  # still the single active token
    sandbox.post("/sandbox/clock", json={"advance": "61s"})
    expired = sandbox.get(f"{M2M}/simcards?msisdn=32470000001", headers=headers)
    assert expired.status_code == 401
    renewed = access_token(sandbox)
    assert renewed
    assert renewed != token


def test_lifecycle_timestamps_follow_the_sandbox_clock(
    sandbox: TestClient, receiver: Receiver
) -> None:
    sandbox.post("/sandbox/clock", json={"set": "2030-06-30T23:00:00Z"})
    status = _finished(sandbox, "deactivation", 2, receiver)
    finished = datetime.fromisoformat(status["finishedAt"])
    assert abs(finished - datetime(2030, 6, 30, 23, tzinfo=UTC)) < timedelta(minutes=5)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "exactly one"),
        ({"advance": "1h", "realtime": True}, "exactly one"),
        ({"advance": "an hour"}, "advance"),
        ({"advance": -5}, "advance"),
        ({"advance": "1h", "speed": 2}, "speed"),
        ({"set": "2030-01-01T00:00:00"}, "set"),
        ({"realtime": False}, "realtime"),
    ],
)
def test_a_wrong_clock_change_is_a_422_naming_it(
    sandbox: TestClient, body: dict[str, Any], named: str
) -> None:
    answer = sandbox.post("/sandbox/clock", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request"
    assert named in str(answer.json())
    assert sandbox.get("/sandbox/clock").json()["realtime"]


# --- faults -----------------------------------------------------------------------------------


def test_a_failure_fault_fails_the_next_operation_with_its_message(
    sandbox: TestClient, receiver: Receiver
) -> None:
    fault = {
        "identifier": "32470000003",
        "operation": "deactivation",
        "kind": "failure",
        "message": "HLR says no",
        "count": 1,
    }
    added = sandbox.post("/sandbox/faults", json=fault)
    assert added.status_code == 201
    assert added.json() == {**fault, "latency_ms": 0}
    assert sandbox.get("/sandbox/faults").json() == [{**fault, "latency_ms": 0}]
    failed = _finished(sandbox, "deactivation", 3, receiver)
    assert failed["devices"][0]["resultStatus"] == "Failure"
    assert failed["devices"][0]["messages"] == ["HLR says no"]
    assert sandbox.get("/sandbox/faults").json() == []  # "the next one" was used up
    assert _finished(sandbox, "deactivation", 3, receiver)["devices"][0]["resultStatus"] == (
        "Success"
    )


def test_a_timeout_fault_fails_as_a_silent_network_does(
    sandbox: TestClient, receiver: Receiver
) -> None:
    sandbox.post("/sandbox/faults", json={"identifier": "32470000004", "kind": "timeout"})
    status = _finished(sandbox, "deactivation", 4, receiver)
    assert status["devices"][0]["messages"] == [TIMEOUT_MESSAGE]
    # Without a count it stays: every operation on that SIM meets it.
    status = _finished(sandbox, "termination", 4, receiver)
    assert status["devices"][0]["resultStatus"] == "Failure"


def test_a_latency_fault_delays_but_does_not_fail(sandbox: TestClient, receiver: Receiver) -> None:
    sandbox.post(
        "/sandbox/faults",
        json={"identifier": "32470000005", "kind": "latency", "latency_ms": 50},
    )
    assert _finished(sandbox, "deactivation", 5, receiver)["devices"][0]["resultStatus"] == (
        "Success"
    )


def test_faults_are_cleared_on_demand(sandbox: TestClient, receiver: Receiver) -> None:
    sandbox.post("/sandbox/faults", json={"identifier": "32470000006"})
    assert sandbox.delete("/sandbox/faults").status_code == 204
    assert sandbox.get("/sandbox/faults").json() == []
    assert _finished(sandbox, "deactivation", 6, receiver)["devices"][0]["resultStatus"] == (
        "Success"
    )


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "identifier"),
        ({"identifier": "1", "operation": "suspension"}, "operation"),
        ({"identifier": "1", "kind": "explode"}, "kind"),
        ({"identifier": "1", "latency_ms": -1}, "latency_ms"),
        ({"identifier": "1", "latency_ms": True}, "latency_ms"),
        ({"identifier": "1", "count": 0}, "count"),
    ],
)
def test_a_wrong_fault_is_a_422_naming_it(
    sandbox: TestClient, body: dict[str, Any], named: str
) -> None:
    answer = sandbox.post("/sandbox/faults", json=body)
    assert answer.status_code == 422
    assert named in str(answer.json())
    assert sandbox.get("/sandbox/faults").json() == []


# --- what was sent ----------------------------------------------------------------------------


def test_the_deliveries_cursor_is_a_whole_number(sandbox: TestClient) -> None:
    assert sandbox.get("/sandbox/deliveries?after=3").status_code == 200
    for written in ("0.0", "1_0", " 1"):
        answer = sandbox.get("/sandbox/deliveries", params={"after": written})
        assert answer.status_code == 422, written
        assert "after" in answer.text


def test_what_was_sent_is_there_to_assert_on(sandbox: TestClient, receiver: Receiver) -> None:
    _finished(sandbox, "deactivation", 7, receiver)
    page = sandbox.get("/sandbox/deliveries").json()
    assert len(page["deliveries"]) == 1
    sent = page["deliveries"][0]
    tracking = sent["tracking_number"]
    assert sent["kind"] == "callback"
    assert sent["url"] == receiver.url
    assert sent["headers"]["x-callback-token"] == "encotest"
    assert sent["headers"]["webhook-signature"].startswith("v1,")
    assert sent["body"] == receiver.messages()[0]
    assert sent["body"]["trackingNumber"] == tracking
    assert (sent["status_code"], sent["error"], sent["delivered"]) == (200, None, True)
    # The cursor: nothing new after it, until something is sent.
    assert sandbox.get(f"/sandbox/deliveries?after={page['cursor']}").json() == {
        "deliveries": [],
        "cursor": page["cursor"],
    }
    _finished(sandbox, "deactivation", 8, receiver)
    later = sandbox.get(f"/sandbox/deliveries?after={page['cursor']}").json()["deliveries"]
    assert [d["body"]["device"]["identifier"] for d in later] == [
        receiver.messages()[1]["device"]["identifier"]
    ]
    only = sandbox.get(f"/sandbox/deliveries?tracking_number={tracking}").json()["deliveries"]
    assert [d["tracking_number"] for d in only] == [tracking]


def test_a_failed_attempt_is_recorded_and_its_retry_comes_with_the_clock(
    sandbox: TestClient, receiver: Receiver
) -> None:
    receiver.fail_first = 1
    headers = auth(sandbox)
    configure(sandbox, headers, receiver.url)
    request(sandbox, headers, "deactivation", [msisdn(9)])

    def attempts() -> list[dict[str, Any]]:
        return list(sandbox.get("/sandbox/deliveries").json()["deliveries"])

    wait_for(attempts, 30, "the first attempt")
    first = attempts()[0]
    assert (first["status_code"], first["delivered"]) == (500, False)
    assert first["error"] == "HTTP 500: non-2xx answer"
    # The retry is due in a while, on the sandbox's clock: moving it brings the retry now.
    sandbox.post("/sandbox/clock", json={"advance": "1h"})
    wait_for(lambda: len(attempts()) == 2, 30, "the retry")
    retry = attempts()[1]
    assert (retry["status_code"], retry["delivered"]) == (200, True)
    assert retry["headers"]["webhook-id"] == first["headers"]["webhook-id"]


# --- reset ------------------------------------------------------------------------------------


def test_reset_puts_back_the_demo_state_clock_faults_and_log(
    sandbox: TestClient, receiver: Receiver
) -> None:
    sandbox.post("/sandbox/faults", json={"identifier": "32470000010", "count": 1})
    _finished(sandbox, "deactivation", 11, receiver)
    sandbox.post("/sandbox/clock", json={"advance": "2h"})
    headers = auth(sandbox)
    sim = f"{M2M}/simcards?msisdn=32470000011"
    assert sandbox.get(sim, headers=headers).json()[0]["State"] == "Deactivated"

    assert sandbox.post("/sandbox/reset").status_code == 204

    assert sandbox.get("/sandbox/clock").json()["realtime"]
    assert sandbox.get("/sandbox/faults").json() == []
    assert sandbox.get("/sandbox/deliveries").json()["deliveries"] == []
    assert sandbox.get(sim, headers=headers).status_code == 401  # tokens went too
    fresh = auth(sandbox)
    assert sandbox.get(sim, headers=fresh).json()[0]["State"] == "Active"
    assert sandbox.get(f"{M2M}/configure/callback", headers=fresh).json()["url"] is None


def _dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (but the workers' heartbeats: the processes', not demo data),
    in primary-key order."""
    with engine.connect() as conn:
        return {
            table.name: [
                tuple(row)
                for row in conn.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in metadata.sorted_tables
            if table.name not in KEPT
        }


def test_after_a_reset_the_database_is_a_fresh_sandboxs_byte_for_byte(
    sandbox: TestClient, receiver: Receiver, engine: Engine, clock: ManualClock
) -> None:
    fresh = _dump(engine)
    assert len(fresh["sim_cards"]) == 100
    # Change everything a test might: SIM states, history, messages, events, tokens, the
    # callback configuration, a SIM's fields, another account, failed logins.
    _finished(sandbox, "deactivation", 12, receiver)
    headers = auth(sandbox)
    patched = sandbox.patch(
        f"{M2M}/simcards/{demo_iccid(13)}",
        headers={**headers, "Content-Type": "application/merge-patch+json"},
        json={"CostCenter": "CC-CHANGED"},
    )
    assert patched.status_code == 200, patched.text
    sandbox.post("/token", data={"grant_type": "client_credentials", "client_id": "x"})
    account_service.create_account(engine, clock, "Added by a test", actor=ADMIN_CLI)
    assert _dump(engine) != fresh

    assert sandbox.post("/sandbox/reset").status_code == 204

    assert _dump(engine) == fresh  # ids and timestamps included: the clock did not move


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("+1h", 3600), ("31d", 31 * 86400), ("1d12h", 129600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "1y", "-1h", "1h-", "one hour"])
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_every_loopback_address_is_served(
    settings: Settings, engine: Engine, clock: ManualClock, address: str
) -> None:
    app = create_app(settings, engine=engine, clock=clock)
    with TestClient(app, client=(address, 40000)) as client:
        assert client.get("/sandbox/clock").status_code == 200
