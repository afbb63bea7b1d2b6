"""Event subscriptions end to end, on both databases, with real receivers on loopback: a
subscriber gets exactly the events it asked for (types, labels), signed with its own secret;
paused, resumed, replayed; a dead receiver stops only its own subscription; tenant isolation;
bad input answers 422 naming what is wrong; rotating the secret signs with both for a while."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from standardwebhooks.webhooks import Webhook

from m2m.client import EventVerifier, InvalidCallback
from m2m.clock import ManualClock
from m2m.lifecycle import Operation
from m2m.settings import Settings
from tests.support.api import M2M, access_token, auth, configure
from tests.support.intake import accept
from tests.support.receiver import Received, Receiver, run_receiver
from tests.support.sims import add_active_sims, set_labels
from tests.support.tenants import Tenant
from tests.support.worker import drain

SANDBOX_ACCOUNT = 1
SUBS = f"{M2M}/event-subscriptions"


def _subscribe(
    api: TestClient, auth_headers: dict[str, str], url: str, **body: Any
) -> dict[str, Any]:
    response = api.post(SUBS, headers=auth_headers, json={"url": url, **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _deactivate(
    quiet: Settings, engine: Engine, clock: ManualClock, count: int, first: int = 0
) -> list[str]:
    msisdns = add_active_sims(engine, count, clock.now(), account_id=SANDBOX_ACCOUNT, first=first)
    accept(engine, clock, SANDBOX_ACCOUNT, Operation.DEACTIVATION, msisdns)
    drain(quiet, engine, clock)
    return msisdns


def _events(receiver: Receiver, secret: str) -> list[Any]:
    verifier = EventVerifier(signing_secret=secret)
    with receiver.lock:
        received = list(receiver.received)
    return [verifier.verify(r.body, r.headers) for r in received]


def test_a_sim_subscriber_gets_exactly_one_signed_state_change(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock, receiver: Receiver
) -> None:
    headers = auth(api)
    created = _subscribe(
        api, headers, receiver.url, event_types=["sim.*"], headers={"x-team": "fleet"}
    )
    assert created["id"].startswith("sub_")
    assert created["secret"].startswith("whsec_")
    assert created["headers"] == {"x-team": "****"}
    [msisdn] = _deactivate(quiet, engine, clock, 1)

    [event] = _events(receiver, created["secret"])
    assert event.type == "sim.state_changed"
    assert event.sim is not None
    assert event.sim.msisdn == msisdn
    assert event.data["from"] == "Active"
    assert event.data["to"] == "Deactivated"
    [sent] = receiver.received
    assert sent.headers["webhook-id"] == event.id
    assert sent.headers["x-team"] == "fleet"
    assert "x-callback-token" not in sent.headers
    # The envelope is the log's: the same as GET /events serves it.
    log = api.get(f"{M2M}/events?type=sim.state_changed", headers=headers).json()["events"]
    assert [e for e in log if e["id"] == event.id] == [sent.json()]
    # Another secret does not verify it.
    other = _subscribe(api, headers, receiver.url, event_types=["*"])
    with pytest.raises(InvalidCallback):
        EventVerifier(signing_secret=other["secret"]).verify(sent.body, sent.headers)
    # Nothing more goes out: the cursor moved past what was delivered.
    drain(quiet, engine, clock)
    assert receiver.count() == 1


def test_type_and_label_filters(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock
) -> None:
    headers = auth(api)
    with run_receiver() as completions, run_receiver() as ghent:
        by_type = _subscribe(api, headers, completions.url, event_types=["request.completed"])
        by_label = _subscribe(
            api, headers, ghent.url, event_types=["*"], label_filter={"site": "gent"}
        )
        msisdns = add_active_sims(engine, 2, clock.now(), account_id=SANDBOX_ACCOUNT)
        set_labels(engine, msisdns[0], {"site": "gent", "team": "x"})
        set_labels(engine, msisdns[1], {"site": "antwerp"})
        accept(engine, clock, SANDBOX_ACCOUNT, Operation.DEACTIVATION, msisdns)
        drain(quiet, engine, clock)

        [completed] = _events(completions, by_type["secret"])
        assert completed.type == "request.completed"
        assert completed.data["devices"] == 2
        # request.completed is about no SIM: a label filter never matches it.
        [labelled] = _events(ghent, by_label["secret"])
        assert labelled.type == "sim.state_changed"
        assert labelled.sim is not None
        assert labelled.sim.msisdn == msisdns[0]


def test_a_paused_subscription_gets_what_happened_meanwhile_when_resumed(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock, receiver: Receiver
) -> None:
    headers = auth(api)
    created = _subscribe(api, headers, receiver.url, event_types=["sim.*"], status="paused")
    [msisdn] = _deactivate(quiet, engine, clock, 1)
    assert receiver.count() == 0

    patched = api.patch(
        f"{SUBS}/{created['id']}",
        headers={**headers, "Content-Type": "application/merge-patch+json"},
        content=b'{"status": "enabled"}',
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == "enabled"
    drain(quiet, engine, clock)
    [event] = _events(receiver, created["secret"])
    assert event.sim is not None
    assert event.sim.msisdn == msisdn


def test_replay_sends_the_events_since_a_time_again(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock, receiver: Receiver
) -> None:
    headers = auth(api)
    created = _subscribe(api, headers, receiver.url, event_types=["sim.*"])
    since = clock.now()
    _deactivate(quiet, engine, clock, 2)
    first = [e.id for e in _events(receiver, created["secret"])]
    assert len(first) == 2

    clock.advance(120)
    answer = api.post(
        f"{SUBS}/{created['id']}/replay",
        headers=auth(api),
        json={"since": since.isoformat().replace("+00:00", "Z")},
    )
    assert answer.status_code == 200, answer.text
    drain(quiet, engine, clock)
    again = [e.id for e in _events(receiver, created["secret"])]
    # The same webhook-ids (receivers deduplicate by them), in whatever order they arrive.
    assert sorted(again) == sorted(first + first)


def test_a_dead_subscriber_holds_neither_the_callbacks_nor_another_subscription(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock, receiver: Receiver
) -> None:
    headers = auth(api)
    assert configure(api, headers, receiver.url + "/status").status_code == 204
    with run_receiver() as dead, run_receiver() as alive:
        dead.status = 500
        down = _subscribe(api, headers, dead.url, event_types=["sim.*"])
        up = _subscribe(api, headers, alive.url, event_types=["sim.*"])
        count = 12
        _deactivate(quiet, engine, clock, count)
        # The first round sends them all at once (the account's allowance): they all fail.
        first_round = dead.count()
        assert first_round == count
        for _ in range(3):  # retry rounds: without a breaker, every message would go again
            clock.advance(20)
            drain(quiet, engine, clock)

        assert len(_events(alive, up["secret"])) == count
        status_messages = [r for r in receiver.received if r.path.endswith("/status")]
        assert len(status_messages) == count
        shown = api.get(f"{SUBS}/{down['id']}", headers=headers).json()
        assert shown["endpoint"]["state"] == "open"
        # The breaker opened: one probe a round, not one attempt per event and round.
        assert dead.count() - first_round <= 3
        assert api.get(f"{SUBS}/{up['id']}", headers=headers).json()["endpoint"]["state"] == (
            "closed"
        )


def test_another_accounts_subscription_is_not_found(
    api: TestClient, other_tenant: Tenant, receiver: Receiver
) -> None:
    mine = _subscribe(api, auth(api), receiver.url, event_types=["*"])
    token = access_token(api, other_tenant.client_id, other_tenant.client_secret)
    theirs = {"Authorization": f"Bearer {token}", "x-api-key": other_tenant.api_key}
    assert api.get(SUBS, headers=theirs).json()["subscriptions"] == []
    path = f"{SUBS}/{mine['id']}"
    answers = [
        api.get(path, headers=theirs),
        api.patch(path, headers=theirs, json={"status": "paused"}),
        api.post(path + "/rotate-secret", headers=theirs),
        api.post(path + "/replay", headers=theirs, json={"since": "2026-01-01T00:00:00Z"}),
        api.delete(path, headers=theirs),
    ]
    assert [a.status_code for a in answers] == [404] * 5
    assert all(a.json()["error"] == "not_found" for a in answers)
    assert api.get(path, headers=auth(api)).json()["status"] == "enabled"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"event_types": ["sim.statechanged"]}, "sim.statechanged"),
        ({"event_types": []}, "event_types"),
        ({"event_types": [{}]}, "event_types"),
        ({"event_types": ["*"], "url": "ftp://example.com/x"}, "url"),
        ({"event_types": ["*"], "headers": {"Content-Type": "text/plain"}}, "headers"),
        ({"event_types": ["*"], "label_filter": {"=bad": "x"}}, "label"),
        ({"event_types": ["*"], "status": "sleeping"}, "status"),
        ({"event_types": ["*"], "colour": "blue"}, "colour"),
    ],
)
def test_bad_input_is_a_422_naming_it(
    api: TestClient, receiver: Receiver, body: dict[str, Any], named: str
) -> None:
    response = api.post(SUBS, headers=auth(api), json={"url": receiver.url, **body})
    assert response.status_code == 422, response.text
    assert named in response.text
    assert api.get(SUBS, headers=auth(api)).json()["subscriptions"] == []


def test_bad_replays_and_patches_and_the_limit(api: TestClient, receiver: Receiver) -> None:
    headers = auth(api)
    created = _subscribe(api, headers, receiver.url, event_types=["*"])
    path = f"{SUBS}/{created['id']}"
    bad_since = api.post(path + "/replay", headers=headers, json={"since": "yesterday"})
    assert bad_since.status_code == 422
    assert "since" in bad_since.text
    removed = api.patch(path, headers=headers, json={"url": None})
    assert removed.status_code == 422
    assert "url" in removed.text
    assert api.get(f"{SUBS}/sub_nothing", headers=headers).status_code == 422
    for _ in range(19):
        _subscribe(api, headers, receiver.url, event_types=["*"])
    over = api.post(SUBS, headers=headers, json={"url": receiver.url, "event_types": ["*"]})
    assert over.status_code == 422
    assert over.json()["error"] == "too_many_subscriptions"


def test_after_a_rotation_events_carry_both_signatures_for_the_overlap(
    api: TestClient, quiet: Settings, engine: Engine, clock: ManualClock, receiver: Receiver
) -> None:
    headers = auth(api)
    created = _subscribe(api, headers, receiver.url, event_types=["sim.*"])
    rotated = api.post(f"{SUBS}/{created['id']}/rotate-secret", headers=headers)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != created["secret"]
    _deactivate(quiet, engine, clock, 1)
    assert len(_events(receiver, created["secret"])) == 1
    assert len(_events(receiver, new_secret)) == 1

    # After the overlap, only the new secret signs (checked by hand: the clock is a day ahead
    # of the verifier's, whose timestamp tolerance is five minutes).
    clock.advance(timedelta(hours=quiet.signing_rotation_overlap_hours, minutes=1).total_seconds())
    _deactivate(quiet, engine, clock, 1, first=1)
    last = receiver.received[-1]
    assert _signed_by(last, new_secret)
    assert not _signed_by(last, created["secret"])
    assert len(last.headers["webhook-signature"].split()) == 1


def _signed_by(message: Received, secret: str) -> bool:
    expected = Webhook(secret).sign(
        message.headers["webhook-id"],
        datetime.fromtimestamp(int(message.headers["webhook-timestamp"]), UTC),
        message.body.decode(),
    )
    return expected in message.headers["webhook-signature"].split()
