"""The SDK against the real server on loopback: typed answers, lifecycle requests, every error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from m2m.asgi import create_app
from m2m.callbacks import signing_secret
from m2m.client import (
    ApiKeyError,
    AsyncM2MClient,
    CallbackVerifier,
    Device,
    ExtensionUnavailable,
    InvalidRequestError,
    M2MClient,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    SimCard,
    StatusMessage,
    UnexpectedResponse,
)
from m2m.clock import ManualClock
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET, demo_iccid, demo_imsi
from m2m.settings import Settings
from m2m.storage import accounts as account_store
from tests.support.api import M2M
from tests.support.constants import SECRET_KEY
from tests.support.receiver import Receiver
from tests.support.servers import documented_only, free_port, run_server
from tests.support.tenants import Tenant
from tests.support.waiting import wait_for


@pytest.fixture
def m2m(sandbox_server: str) -> Iterator[M2MClient]:
    with M2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as client:
        yield client


def sandbox_secret(engine: Engine) -> str:
    with engine.connect() as conn:
        account = account_store.find_sandbox_account(conn)
    assert account is not None
    return signing_secret(SECRET_KEY, account.id, 1)


def test_get_sim_is_typed_and_keeps_the_wire_document(m2m: M2MClient, sandbox_server: str) -> None:
    sim = m2m.get_sim("+32470000001")
    assert sim.state == "Active"
    assert sim.device.identifier_type == "IMSI"
    assert sim.device.identifier == demo_imsi(1)
    assert sim.data_service.daily_threshold == 1_000
    assert sim.sms_service.plan_code == "M2M-SMS-50"
    assert sim.access_points[0].properties.static_ip == "10.64.0.2"
    raw = httpx.get(
        f"{sandbox_server}{M2M}/simcards",
        params={"msisdn": "32470000001"},
        headers={"Authorization": f"Bearer {m2m.access_token()}", "x-api-key": API_KEY},
    ).json()
    assert [sim.model_dump(mode="json", by_alias=True)] == raw  # DailyTreshold and all


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param({}, id="left-out"),
        pytest.param({"CustomFields": {"Vendor": "y", "Custom Field 2": "x"}}, id="partial"),
    ],
)
def test_custom_fields_have_the_seven_documented_keys_whatever_the_server_sent(
    sent: dict[str, Any],
) -> None:
    """A server may leave unset fields out (the operator's, an older m2m): code written against
    the documentation still reads ``custom_fields["Custom Field 3"]``."""
    document = {"State": "Ready", "Device": {"Identifier": "1", "IdentifierType": "IMSI"}, **sent}

    sim = SimCard.model_validate(document)

    documented = [f"Custom Field {n}" for n in range(1, 8)]
    extra = list(sent.get("CustomFields", {}).keys() - set(documented))
    assert list(sim.custom_fields) == documented + extra  # documented first, in order
    assert sim.custom_fields["Custom Field 3"] == ""
    assert sim.custom_fields["Custom Field 2"] == sent.get("CustomFields", {}).get(
        "Custom Field 2", ""
    )


def test_a_request_from_start_to_callback(
    m2m: M2MClient, engine: Engine, receiver: Receiver
) -> None:
    m2m.configure_callback(receiver.url, {"x-test": "from the SDK"})
    assert m2m.get_callback().url == receiver.url
    devices = [
        Device.msisdn("32470000002"),
        Device.iccid(demo_iccid(3)),
        Device.imsi(demo_imsi(13)),
    ]
    tracking = m2m.deactivate(devices, callback_token="sdk-test")
    [status] = m2m.wait([tracking], poll_seconds=0.05)
    assert status.finished
    assert status.device_count == 3
    assert (status.count("Success"), status.count("Failure")) == (2, 1)  # 13 is a failing test SIM
    assert status.operation == "deactivation"

    verifier = CallbackVerifier(signing_secret=sandbox_secret(engine), callback_token="sdk-test")
    wait_for(lambda: receiver.count() >= 3, 60, "the callbacks")  # they may trail the request
    messages = [verifier.verify(r.body, r.headers) for r in receiver.received]
    assert all(isinstance(m, StatusMessage) for m in messages)
    assert {m.tracking_number for m in messages} == {tracking}
    assert sorted(m.succeeded for m in messages) == [False, True, True]
    assert all(r.headers["x-test"] == "from the SDK" for r in receiver.received)


def test_each_lifecycle_method_names_its_operation(m2m: M2MClient) -> None:
    cases = [
        (m2m.activate, "32470000051"),
        (m2m.deactivate, "32470000004"),
        (m2m.reactivate, "32470000092"),
        (m2m.terminate, "32470000005"),
    ]
    numbers = [method([msisdn], callback_token="t") for method, msisdn in cases]
    statuses = m2m.wait(numbers, poll_seconds=0.05)
    assert [s.operation for s in statuses] == [
        "activation",
        "deactivation",
        "reactivation",
        "termination",
    ]
    assert all(s.count("Success") == 1 for s in statuses)


@pytest.mark.parametrize(
    ("msisdn", "error", "code", "status"),
    [
        ("32479999999", NotFoundError, "not_found", 404),
        ("3247", InvalidRequestError, "invalid_request", 422),
    ],
)
def test_get_sim_errors(
    m2m: M2MClient, msisdn: str, error: type[Exception], code: str, status: int
) -> None:
    with pytest.raises(error) as raised:
        m2m.get_sim(msisdn)
    assert raised.value.code == code  # type: ignore[attr-defined]
    assert raised.value.status_code == status  # type: ignore[attr-defined]


def test_api_key_errors(sandbox_server: str, tenant: Tenant) -> None:
    with (
        M2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, "wrong-key") as m2m,
        pytest.raises(ApiKeyError) as raised,
    ):
        m2m.get_sim("32470000001")
    assert raised.value.code == "invalid_api_key"
    with (
        M2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, tenant.api_key) as m2m,
        pytest.raises(PermissionDeniedError) as denied,
    ):
        m2m.get_sim("32470000001")
    assert denied.value.code == "api_key_mismatch"


def test_repeated_failures_are_rate_limited(sandbox_server: str, settings: Settings) -> None:
    with M2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, "wrong-key") as m2m:
        for _ in range(settings.auth_max_failures):
            with pytest.raises(ApiKeyError):
                m2m.get_sim("32470000001")
        with pytest.raises(RateLimitedError) as raised:
            m2m.get_sim("32470000001")
    assert raised.value.retry_after is not None
    assert raised.value.retry_after > 0


def test_bad_requests_are_refused_with_the_servers_words(m2m: M2MClient) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        m2m.configure_callback("ftp://example.com/", None)
    assert "http" in raised.value.message
    with pytest.raises(InvalidRequestError, match="header"):
        m2m.configure_callback("http://127.0.0.1:9/", {"Cookie": "x"})
    with pytest.raises(ValueError, match="unknown operation"):
        m2m.request("suspension", ["32470000001"], "t")
    with pytest.raises(ValueError, match="device 2"):
        m2m.request_all("activation", ["32470000051", "12"], "t")


@pytest.fixture
def small_server(
    settings: Settings, engine: Engine, clock: ManualClock, seeded: None
) -> Iterator[str]:
    """A server that takes at most 3 devices per request."""
    app = create_app(
        settings.model_copy(update={"max_devices_per_request": 3}), engine=engine, clock=clock
    )
    with run_server(app, free_port(), lifespan="on") as base_url:
        yield base_url


def test_batches_the_server_finds_too_big_are_halved(small_server: str) -> None:
    msisdns = [str(32470000051 + n) for n in range(7)]
    seen: list[int] = []
    with M2MClient(small_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as m2m:
        numbers = m2m.request_all(
            "activation", msisdns, "t", batch_size=10, on_batch=lambda _n, count: seen.append(count)
        )
        statuses = m2m.wait(numbers, poll_seconds=0.05)
    assert sum(seen) == 7
    assert max(seen) <= 3
    assert [s.device_count for s in statuses] == seen
    assert sorted(d.identifier for s in statuses for d in s.devices) == msisdns


@pytest.mark.parametrize("status", [404, 405])
def test_a_server_without_the_extensions(app: FastAPI, seeded: None, status: int) -> None:
    with (
        run_server(documented_only(app, status), free_port()) as base_url,  # type: ignore[arg-type]
        M2MClient(base_url, CLIENT_ID, CLIENT_SECRET, API_KEY) as m2m,
    ):
        tracking = m2m.deactivate(["32470000002"], callback_token="t")
        with pytest.raises(NotFoundError if status == 404 else ExtensionUnavailable):
            m2m.get_request(tracking)
        with pytest.raises(ExtensionUnavailable, match="does not offer request status"):
            m2m.wait([tracking])
        with pytest.raises(ExtensionUnavailable, match="callback configuration"):
            m2m.get_callback()


def test_only_what_is_safe_to_repeat_is_repeated(receiver: Receiver) -> None:
    """A server answering 503 to everything (the test receiver): a repeatable call is sent
    again; a lifecycle request too, with the same Idempotency-Key each time, so that a server
    that honours it accepts it once."""
    receiver.status = 503
    base_url = receiver.url.removesuffix("/callback")
    with M2MClient(base_url, api_key="k", token="permanent", max_retries=2) as m2m:
        with pytest.raises(ServerError, match="503"):
            m2m.configure_callback("http://127.0.0.1:9/", None)
        assert receiver.count() == 3
        with pytest.raises(ServerError, match="503"):
            m2m.deactivate(["32470000001"], callback_token="t")
        assert receiver.count() == 6
        sent = receiver.received[-3:]
        assert {r.path for r in sent} == {f"{M2M}/requests/deactivation"}
        keys = {r.headers["idempotency-key"] for r in sent}
        assert len(keys) == 1
        with pytest.raises(ServerError, match="503"):
            m2m.deactivate(["32470000001"], callback_token="t")
        assert receiver.received[-1].headers["idempotency-key"] not in keys  # a new request


def test_an_answer_the_api_never_gives(receiver: Receiver) -> None:
    base_url = receiver.url.removesuffix("/callback")
    with (
        M2MClient(base_url, api_key="k", token="permanent") as m2m,
        pytest.raises(UnexpectedResponse, match="TrackingNumber"),
    ):
        m2m.deactivate(["32470000001"], callback_token="t")


def test_an_unreachable_server() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with (
        M2MClient(closed, CLIENT_ID, CLIENT_SECRET, API_KEY, max_retries=1) as m2m,
        pytest.raises(NetworkError, match="POST /token failed"),
    ):
        m2m.get_sim("32470000001")


def test_the_async_client_does_the_same(sandbox_server: str) -> None:
    async def scenario() -> None:
        async with AsyncM2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as m2m:
            sim = await m2m.get_sim("32470000060")
            assert sim.state == "Ready"
            numbers = await m2m.request_all("activation", ["32470000060"], "t", batch_size=1)
            [status] = await m2m.wait(numbers, poll_seconds=0.05)
            assert status.count("Success") == 1
            assert (await m2m.get_sim("32470000060")).state == "Active"
            with pytest.raises(NotFoundError):
                await m2m.get_sim("32479999999")
            await m2m.revoke_token()
            assert (await m2m.get_request(numbers[0])).finished

    asyncio.run(scenario())
