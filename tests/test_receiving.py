"""Checking and parsing status messages on the receiver's side; ``m2m listen``; checking a
subscription's events and parsing them into their typed envelopes (real envelopes from the event
log, on both databases, signed as the server signs)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestServer
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from standardwebhooks.webhooks import Webhook

from m2m.callbacks import signing_secret
from m2m.callbacks.message import status_message
from m2m.cli.listen import make_receiver
from m2m.client import (
    Event,
    EventVerifier,
    RequestCompletedEvent,
    SimStateChangedEvent,
    SimUpdatedEvent,
    UsageLimitExceededEvent,
    UsageThresholdReachedEvent,
    parse_event,
)
from m2m.client.receiving import CallbackVerifier, InvalidCallback
from m2m.clock import ManualClock
from m2m.events import UsageThreshold as ServerUsageThreshold
from m2m.lifecycle import Operation
from m2m.sandbox import demo_iccid
from m2m.settings import Settings
from tests.support.api import M2M, auth
from tests.support.intake import accept
from tests.support.servers import M2M_BIN, free_port
from tests.support.worker import drain

SECRET = signing_secret("k" * 40, 1, 1)
BODY = json.dumps(
    status_message(
        "717ccaa0-1234-5678-1234-9444e657ca96", "8932017000000000014", "ICCID", "Success", []
    )
).encode()


def signed_headers(body: bytes = BODY, token: str = "encotest") -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "x-callback-token": token,
        "webhook-id": "msg-1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign("msg-1", now, body.decode()),
    }


def test_a_genuine_message_is_parsed() -> None:
    verifier = CallbackVerifier(signing_secret=SECRET, callback_token="encotest")
    message = verifier.verify(BODY, signed_headers())
    assert message.tracking_number == "717ccaa0-1234-5678-1234-9444e657ca96"
    assert message.device.identifier_type == "ICCID"
    assert message.device.identifier == "8932017000000000014"
    assert message.succeeded
    assert message.messages == []
    assert message.message_id == "msg-1"


def wsgi_environ(headers: dict[str, str]) -> dict[str, object]:
    environ: dict[str, object] = {"REQUEST_METHOD": "POST", "wsgi.input": None}
    environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    return environ


@pytest.mark.parametrize(
    "shape",
    [
        lambda h: h,  # a dict, Flask's or Starlette's headers
        lambda h: {k.title(): v for k, v in h.items()},  # any case
        lambda h: [(k.encode(), v.encode()) for k, v in h.items()],  # ASGI scope["headers"]
        wsgi_environ,  # a WSGI environ
    ],
    ids=["mapping", "title-case", "asgi", "wsgi"],
)
def test_headers_from_any_framework(shape: Callable[[dict[str, str]], Any]) -> None:
    verifier = CallbackVerifier(signing_secret=SECRET, callback_token="encotest")
    message = verifier.verify(BODY, shape(signed_headers()))
    assert message.message_id == "msg-1"


def test_the_message_round_trips_to_the_documented_json() -> None:
    message = CallbackVerifier().verify(BODY, {})
    assert message.model_dump(by_alias=True) == json.loads(BODY)


def unsigned(_body: bytes) -> dict[str, str]:
    return {"x-callback-token": "encotest"}


def signed_for_another_token(body: bytes) -> dict[str, str]:
    return signed_headers(body, token="other")


def signed_for_the_original(_body: bytes) -> dict[str, str]:
    return signed_headers(BODY)


# Headers are made when the test runs, not when it is collected: a signature's timestamp is only
# accepted for five minutes, and a full run of the suite takes about that long.
@pytest.mark.parametrize(
    ("body", "make_headers", "reason"),
    [
        (BODY, signed_for_another_token, "x-callback-token"),
        (BODY.replace(b"Success", b"Failure"), signed_for_the_original, "signature"),
        (BODY, unsigned, "signature"),
        (b"[]", signed_headers, "not a status message"),
        (b"{", signed_headers, "not a status message"),
        (BODY.replace(b'"ICCID"', b'"EID"'), signed_headers, "device.identifierType"),
    ],
)
def test_forged_or_malformed_messages_are_refused(
    body: bytes, make_headers: Callable[[bytes], dict[str, str]], reason: str
) -> None:
    verifier = CallbackVerifier(signing_secret=SECRET, callback_token="encotest")
    with pytest.raises(InvalidCallback, match=reason):
        verifier.verify(body, make_headers(body))


def run_listen(tmp_path: Path) -> tuple[httpx.Response, httpx.Response, str, str]:
    """``m2m listen`` in its own process: one good and one forged message; (answers, out, err)."""
    port = free_port()
    out, err = tmp_path / "listen.out", tmp_path / "listen.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [
                M2M_BIN,
                "listen",
                "--port",
                str(port),
                "--callback-token",
                "encotest",
                "--secret",
                SECRET,
            ],
            stdout=stdout,
            stderr=stderr,
        )
    try:
        url = f"http://127.0.0.1:{port}/callback"
        deadline = time.monotonic() + 30
        while True:
            try:
                good = httpx.post(url, content=BODY, headers=signed_headers())
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                assert process.poll() is None
                time.sleep(0.1)
        bad = httpx.post(url, content=BODY, headers=signed_headers(token="nope"))
    finally:
        process.terminate()
        process.wait(timeout=10)
    return good, bad, out.read_text(), err.read_text()


def test_listen_prints_messages_and_refuses_wrong_tokens(tmp_path: Path) -> None:
    good, bad, printed, errors = run_listen(tmp_path)
    assert good.status_code == 204
    assert bad.status_code == 401
    assert printed.strip() == (
        "717ccaa0-1234-5678-1234-9444e657ca96  ICCID 8932017000000000014  Success"
    )
    assert "refused /callback: wrong or missing x-callback-token" in errors


def test_listen_json_prints_one_document_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The receiver app of ``m2m listen --json``, served in-process on loopback."""
    verifier = CallbackVerifier(signing_secret=SECRET, callback_token="encotest")

    async def post_twice() -> list[int]:
        async with TestServer(make_receiver(verifier, as_json=True)) as server:
            url = str(server.make_url("/callback"))
            async with httpx.AsyncClient() as http:
                good = await http.post(url, content=BODY, headers=signed_headers())
                bad = await http.post(url, content=BODY, headers=signed_headers(token="x"))
        return [good.status_code, bad.status_code]

    assert asyncio.run(post_twice()) == [204, 401]
    [line] = capsys.readouterr().out.splitlines()  # the refusal goes to stderr
    assert json.loads(line) == {**json.loads(BODY), "webhookId": "msg-1"}


# --- events (a subscription's deliveries) ---------------------------------------------------

EVENT_SECRET = signing_secret("e" * 40, 1, 1)
OLD_EVENT_SECRET = signing_secret("e" * 40, 1, 0)


def signed_event(body: bytes, *secrets: str) -> dict[str, str]:
    """Standard Webhooks headers as the server's sender writes them (``webhook-id``: the event's
    id), signed with each secret (two while a secret is rotated: the header carries both)."""
    now = datetime.now(UTC)
    try:
        event_id = str(json.loads(body)["id"])
    except (ValueError, KeyError, TypeError):
        event_id = "none"
    signatures = [Webhook(s).sign(event_id, now, body.decode()) for s in secrets or (EVENT_SECRET,)]
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


def logged_envelopes(
    api: TestClient, engine: Engine, quiet: Settings, clock: ManualClock
) -> list[bytes]:
    """Real envelopes, as the event log answers them: a deactivation (a state change and its
    request's completion) and an update (sim.updated), each as its own JSON body."""
    headers = auth(api)
    accept(engine, clock, 1, Operation.DEACTIVATION, ["32470000001"])
    drain(quiet, engine, clock)
    iccid = demo_iccid(2)
    patched = api.patch(
        f"{M2M}/simcards/{iccid}",
        headers={**headers, "Content-Type": "application/merge-patch+json"},
        content=b'{"CostCenter": "logistics", "Labels": {"site": "gent"}}',
    )
    assert patched.status_code == 200, patched.text
    answer = api.get(f"{M2M}/events", headers=headers)
    assert answer.status_code == 200
    return [json.dumps(e).encode() for e in answer.json()["events"]]


def test_signed_events_from_the_log_parse_as_their_typed_envelopes(
    api: TestClient, engine: Engine, quiet: Settings, clock: ManualClock
) -> None:
    bodies = logged_envelopes(api, engine, quiet, clock)
    verifier = EventVerifier(signing_secret=EVENT_SECRET)
    changed, completed, updated = (verifier.verify(b, signed_event(b)) for b in bodies)

    assert isinstance(changed, SimStateChangedEvent)
    assert changed.sim is not None
    assert changed.sim.msisdn == "32470000001"
    assert (changed.data.from_state, changed.data.to_state) == ("Active", "Deactivated")
    assert changed.data.cause == "request"
    assert changed.data.operation == "deactivation"
    assert changed.data["from"] == "Active"  # the wire's names still read, as from a dict

    assert isinstance(completed, RequestCompletedEvent)
    assert completed.sim is None
    assert completed.data.tracking_number == changed.data.tracking_number
    assert (completed.data.devices, completed.data.results) == (1, {"Success": 1})

    assert isinstance(updated, SimUpdatedEvent)
    assert updated.sim is not None
    assert updated.sim.labels == {"site": "gent"}
    assert updated.data.fields == ["CostCenter", "Labels.site"]
    assert updated.data.changes["Labels.site"].before is None
    assert updated.data.changes["Labels.site"].after == "gent"
    assert updated.data.changes["CostCenter"].after == "logistics"

    for body, event in zip(bodies, (changed, completed, updated), strict=True):
        assert isinstance(event, Event)
        # Nothing lost: the model gives the envelope back as it came.
        dumped = event.model_dump(mode="json", by_alias=True)
        sent = json.loads(body)
        assert dumped["data"] == sent["data"]
        assert dumped["sim"] == sent["sim"]
        assert int(event.id) > 0


def test_usage_events_parse_as_their_typed_envelopes() -> None:
    for kind, model, percent in (
        ("usage.threshold_reached", UsageThresholdReachedEvent, 80),
        ("usage.limit_exceeded", UsageLimitExceededEvent, 100),
    ):
        body = {
            "id": "78",
            "type": kind,
            "version": 1,
            "occurred_at": "2026-12-01T04:12:09Z",
            "account": 1,
            "sim": {"ICCID": "8932017000000000015", "MSISDN": "32470000001", "labels": {}},
            "data": {
                "service": "data",
                "period": "daily",
                "period_start": "2026-12-01",
                "threshold": 50,
                "unit": "MB",
                "used": 40.5,
                "percent": percent,
            },
        }
        event = parse_event(json.dumps(body))
        assert isinstance(event, model)
        assert event.data.period_start == date(2026, 12, 1)
        assert (event.data.service, event.data.used, event.data.percent) == ("data", 40.5, percent)
        assert event.model_dump(mode="json", by_alias=True)["data"] == body["data"]
        # The body is what the server's catalog sends: its own model takes it, field for field.
        sent = ServerUsageThreshold.model_validate(body["data"]).model_dump(mode="json")
        assert sent == body["data"]


def test_an_unknown_type_parses_as_a_generic_event_and_new_fields_are_kept() -> None:
    body = json.dumps(
        {
            "id": "77",
            "type": "network.outage",
            "version": 1,
            "occurred_at": "2026-12-01T04:12:09.481203Z",
            "account": 1,
            "sim": {"ICCID": "8932017000000000015", "MSISDN": "32470000001", "labels": {}},
            "data": {"threshold": 1000, "unit": "MB"},
            "severity": "warning",
        }
    ).encode()
    event = EventVerifier(signing_secret=EVENT_SECRET).verify(body, signed_event(body))
    assert type(event) is Event
    assert event.type == "network.outage"
    assert event.data == {"threshold": 1000, "unit": "MB"}

    newer = json.loads(body)
    newer.update(
        type="sim.state_changed",
        data={"from": "Active", "to": "Deactivated", "cause": "admin", "reason": "fraud"},
    )
    typed = parse_event(json.dumps(newer))
    assert isinstance(typed, SimStateChangedEvent)
    assert typed.data.tracking_number is None
    assert typed.data["reason"] == "fraud"  # a field this SDK does not know yet, kept
    assert typed.model_dump(by_alias=True)["data"]["reason"] == "fraud"


def signed_as(body: bytes, message_id: str) -> dict[str, str]:
    """Genuinely signed, under a webhook-id that is not the event's."""
    now = datetime.now(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(EVENT_SECRET).sign(message_id, now, body.decode()),
    }


def test_while_a_secret_is_rotated_either_one_verifies() -> None:
    body = json.dumps(
        {
            "id": "1",
            "type": "x.y",
            "version": 1,
            "occurred_at": "2026-12-01T04:12:09Z",
            "account": 1,
            "sim": None,
            "data": {},
        }
    ).encode()
    both = signed_event(body, EVENT_SECRET, OLD_EVENT_SECRET)
    assert EventVerifier(signing_secret=OLD_EVENT_SECRET).verify(body, both).id == "1"
    assert EventVerifier(signing_secret=EVENT_SECRET).verify(body, both).id == "1"
    with pytest.raises(InvalidCallback, match="signature"):
        EventVerifier(signing_secret=OLD_EVENT_SECRET).verify(
            body, signed_event(body, EVENT_SECRET)
        )


GOOD_EVENT = json.dumps(
    {
        "id": "5",
        "type": "sim.state_changed",
        "version": 1,
        "occurred_at": "2026-12-01T04:12:09Z",
        "account": 1,
        "sim": None,
        "data": {"from": "Active", "to": "Deactivated", "cause": "request"},
    }
).encode()


@pytest.mark.parametrize(
    ("body", "make_headers", "reason"),
    [
        (
            GOOD_EVENT.replace(b"Deactivated", b"Terminated"),
            lambda _b: signed_event(GOOD_EVENT),
            "signature",
        ),
        (GOOD_EVENT, lambda _b: {}, "signature"),
        (GOOD_EVENT, lambda b: signed_event(b, signing_secret("x" * 40, 1, 1)), "signature"),
        (
            GOOD_EVENT.replace(b'"id": "5", ', b""),
            signed_event,
            r"not an event: .*id: Field required",
        ),
        (GOOD_EVENT.replace(b'"cause": "request"', b'"cause": 5'), signed_event, "data.cause"),
        (b"[]", signed_event, "not an event"),
        (GOOD_EVENT, lambda b: signed_as(b, "6"), "the webhook-id is not the event's id"),
    ],
)
def test_forged_or_malformed_events_are_refused(
    body: bytes, make_headers: Callable[[bytes], dict[str, str]], reason: str
) -> None:
    with pytest.raises(InvalidCallback, match=reason):
        EventVerifier(signing_secret=EVENT_SECRET).verify(body, make_headers(body))
