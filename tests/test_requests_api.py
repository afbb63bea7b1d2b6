"""Callback configuration, lifecycle requests and their callbacks, end to end over loopback."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from standardwebhooks.webhooks import Webhook

from m2m.callbacks import signing_secret
from m2m.callbacks.rules import header_problem
from m2m.clock import ManualClock
from m2m.identifiers import SimState
from m2m.lifecycle import Operation, decide
from m2m.sandbox import API_KEY, demo_iccid, demo_imsi
from m2m.storage.tables import lifecycle_requests, sim_cards, sim_history
from tests.support.api import M2M, auth, configure, msisdn, request, wait_until_finished
from tests.support.constants import SECRET_KEY
from tests.support.receiver import Receiver
from tests.support.sims import add_sim
from tests.support.tenants import Tenant

MSISDN = {"identifierType": "MSISDN"}


def sim_state(client: TestClient, headers: dict[str, str], n: int) -> str:
    response = client.get(f"{M2M}/simcards", params={"msisdn": 32470000000 + n}, headers=headers)
    return str(response.json()[0]["State"])


@pytest.mark.usefixtures("seeded")
def test_documented_deactivation_reaches_the_callback(
    client: TestClient, receiver: Receiver
) -> None:
    headers = auth(client)
    configured = configure(
        client,
        headers,
        receiver.url,
        {"Authorization": "Bearer cb-secret", "x-test": "Another custom header"},
    )
    assert configured.status_code == 204
    assert configured.content == b""

    accepted = client.post(
        f"{M2M}/requests/deactivation",
        headers={
            **headers,
            "Content-Type": "application/json",
            "Accept-Language": "application/json",
            "x-callback-token": "encotest",
        },
        content='[{"identifier":"32470000001","identifierType":"MSISDN"}]',
    )
    assert accepted.status_code == 202
    tracking = accepted.json()["TrackingNumber"]
    assert list(accepted.json()) == ["TrackingNumber"]

    status = wait_until_finished(client, headers, tracking)
    assert status["operation"] == "deactivation"
    assert status["devices"][0]["resultStatus"] == "Success"
    assert sim_state(client, headers, 1) == "Deactivated"

    [message] = receiver.received
    assert message.headers["x-callback-token"] == "encotest"
    assert message.headers["authorization"] == "Bearer cb-secret"
    assert message.headers["x-test"] == "Another custom header"
    assert message.headers["content-type"] == "application/json"
    body = message.json()
    assert body == {
        "trackingNumber": tracking,
        "device": {"identifier": body["device"]["identifier"], "identifierType": "ICCID"},
        "resultStatus": "Success",
        "messages": [],
    }
    assert len(body["device"]["identifier"]) in (19, 20)
    # Standard Webhooks: a receiver verifies with its account's secret.
    account_id = 1
    secret = signing_secret(SECRET_KEY, account_id, 1)
    verified = Webhook(secret).verify(message.body, message.headers)
    assert verified == body


@pytest.mark.usefixtures("seeded")
def test_reactivation_and_non_transitions_report_through_callbacks(
    client: TestClient, receiver: Receiver
) -> None:
    headers = auth(client)
    configure(client, headers, receiver.url)
    tracking = request(
        client,
        headers,
        "reactivation",
        [
            msisdn(91),
            msisdn(1),
            msisdn(51),
            {"identifier": "32499999999", "identifierType": "MSISDN"},
        ],
    ).json()["TrackingNumber"]
    status = wait_until_finished(client, headers, tracking)
    results = {d["identifier"]: d for d in status["devices"]}
    assert results["32470000091"]["resultStatus"] == "Success"
    assert results["32470000091"]["messages"] == []
    assert results["32470000001"]["resultStatus"] == "Success"  # already Active
    assert "nothing was changed" in results["32470000001"]["messages"][0]
    assert results["32470000051"]["resultStatus"] == "Failure"  # Ready: use activation
    assert "Ready" in results["32470000051"]["messages"][0]
    assert results["32499999999"]["resultStatus"] == "Failure"
    assert results["32499999999"]["messages"] == ["Device not found."]
    assert sim_state(client, headers, 91) == "Active"
    assert len(receiver.received) == 4
    unknown = [m for m in receiver.messages() if m["device"]["identifierType"] == "MSISDN"]
    assert unknown[0]["device"]["identifier"] == "32499999999"


@pytest.mark.usefixtures("seeded")
def test_other_accounts_devices_are_not_found(
    client: TestClient, receiver: Receiver, other_tenant: Tenant, engine: Engine
) -> None:
    headers = auth(client)
    configure(client, headers, receiver.url)

    add_sim(engine, ManualClock(), other_tenant.account_id, "32499000001")
    tracking = request(
        client, headers, "termination", [{"identifier": "32499000001", "identifierType": "MSISDN"}]
    ).json()["TrackingNumber"]
    status = wait_until_finished(client, headers, tracking)
    assert status["devices"][0]["resultStatus"] == "Failure"
    assert status["devices"][0]["messages"] == ["Device not found."]
    # And the owner cannot see the request.
    other = {
        "Authorization": f"Bearer {other_tenant.permanent_token}",
        "x-api-key": other_tenant.api_key,
    }
    assert client.get(f"{M2M}/requests/{tracking}", headers=other).status_code == 404


@pytest.mark.usefixtures("seeded")
def test_devices_by_iccid_and_imsi(client: TestClient, receiver: Receiver) -> None:
    headers = auth(client)
    configure(client, headers, receiver.url)
    tracking = request(
        client,
        headers,
        "activation",
        [
            {"identifier": demo_iccid(52), "identifierType": "ICCID"},
            {"identifier": demo_imsi(53), "identifierType": "IMSI"},
        ],
    ).json()["TrackingNumber"]
    status = wait_until_finished(client, headers, tracking)
    assert [d["resultStatus"] for d in status["devices"]] == ["Success", "Success"]
    assert sim_state(client, headers, 52) == sim_state(client, headers, 53) == "Active"


@pytest.mark.usefixtures("seeded")
def test_per_sim_order_is_acceptance_order(
    client: TestClient, receiver: Receiver, engine: Engine
) -> None:
    headers = auth(client)
    configure(client, headers, receiver.url)
    sequence = ["deactivation", "reactivation", "deactivation", "termination", "activation"]
    trackings = [
        request(client, headers, op, [msisdn(2)]).json()["TrackingNumber"] for op in sequence
    ]
    results = [wait_until_finished(client, headers, t)["devices"][0] for t in trackings]
    assert [r["resultStatus"] for r in results] == ["Success"] * 4 + ["Failure"]
    assert sim_state(client, headers, 2) == "Terminated"
    with engine.connect() as conn:
        changes = conn.execute(
            select(sim_history.c.from_state, sim_history.c.to_state).order_by(sim_history.c.id)
        ).all()
    assert [tuple(c) for c in changes] == [
        ("Active", "Deactivated"),
        ("Deactivated", "Active"),
        ("Active", "Deactivated"),
        ("Deactivated", "Terminated"),
    ]


@pytest.mark.usefixtures("seeded")
def test_test_sims_always_fail_with_a_network_error(client: TestClient, receiver: Receiver) -> None:
    headers = auth(client)
    configure(client, headers, receiver.url)
    tracking = request(client, headers, "deactivation", [msisdn(13)]).json()["TrackingNumber"]
    device = wait_until_finished(client, headers, tracking)["devices"][0]
    assert device["resultStatus"] == "Failure"
    assert "Network error" in device["messages"][0]
    assert sim_state(client, headers, 13) == "Active"


@pytest.mark.usefixtures("seeded")
def test_messages_wait_for_a_callback_url(client: TestClient, receiver: Receiver) -> None:
    headers = auth(client)
    tracking = request(client, headers, "deactivation", [msisdn(3)]).json()["TrackingNumber"]
    deadline = time.monotonic() + 30
    while True:
        device = client.get(f"{M2M}/requests/{tracking}", headers=headers).json()["devices"][0]
        if device["callback"] and device["callback"]["attempts"] >= 1:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert device["callback"]["status"] == "pending"
    assert "no callback URL" in device["callback"]["lastError"]
    configure(client, headers, receiver.url)  # the message goes out now, not at the next retry
    status = wait_until_finished(client, headers, tracking, timeout=30)
    assert status["devices"][0]["callback"]["status"] == "delivered"
    assert receiver.count() == 1


@pytest.mark.usefixtures("seeded")
def test_callback_configuration_rules(client: TestClient) -> None:
    headers = auth(client)
    for body, fragment in [
        ({"url": "ftp://example.com/cb"}, "http"),
        ({"url": "/relative"}, "absolute"),
        ({"url": "https://user:pw@example.com/cb"}, "without user"),
        ({"url": "https://example.com/cb", "headers": {"Cookie": "a=b"}}, "x-* headers"),
        ({"url": "https://example.com/cb", "headers": {"x-callback-token": "t"}}, "per request"),
        ({"url": "https://example.com/cb", "headers": {"x-a": "1\r\nHost: evil"}}, "CR, LF"),
    ]:
        response = client.post(f"{M2M}/configure/callback", headers=headers, json=body)
        assert response.status_code == 422, body
        assert response.json()["error"] in ("invalid_callback", "invalid_request"), body
        assert fragment in response.json()["error_description"]
    for url in ["http://169.254.169.254/latest", "http://10.0.0.1/cb", "http://167772161/"]:
        response = client.post(f"{M2M}/configure/callback", headers=headers, json={"url": url})
        assert response.status_code == 403, url
        assert response.json()["error"] == "callback_target_forbidden"
    missing = client.post(f"{M2M}/configure/callback", headers=headers, json={})
    assert missing.status_code == 422
    assert client.post(f"{M2M}/configure/callback", json={"url": "https://x.io"}).status_code == 401


@pytest.mark.usefixtures("seeded")
def test_a_callback_header_name_is_bounded_and_never_echoed(client: TestClient) -> None:
    headers = auth(client)
    long_name = "x-" + "n" * 5000
    for name, problem in [
        (long_name, "String should have at most 256 characters"),
        ("x-<script>alert(1)</script>", "only Authorization and x-* headers are allowed"),
    ]:
        body = {"url": "https://example.com/cb", "headers": {"x-ok": "1", name: "v"}}
        response = client.post(f"{M2M}/configure/callback", headers=headers, json=body)
        assert response.status_code == 422
        assert response.json()["details"] == [
            {
                "field": "body.headers[1].name",
                "problem": problem
                + (" (x-callback-token is set per request)" if "Authorization" in problem else ""),
            }
        ]
        assert name not in response.text
        assert "<script>" not in response.text
    assert header_problem("x-" + "n" * 300, "v") == "a header name is longer than 256 characters"


@pytest.mark.usefixtures("seeded")
def test_ipv6_callback_urls_follow_the_address_rules(client: TestClient) -> None:
    headers = auth(client)

    def configure_url(url: str) -> httpx.Response:
        return client.post(f"{M2M}/configure/callback", headers=headers, json={"url": url})

    for url in ["https://[2606:4700:4700::1111]/cb", "https://[2001:4860:4860::8888]:8443/x?y=1"]:
        assert configure_url(url).status_code == 204, url
        assert client.get(f"{M2M}/configure/callback", headers=headers).json()["url"] == url
    assert configure_url("http://[::1]:9000/cb").status_code == 204  # loopback: the sandbox
    for url in [
        "https://[fd00::1]/cb",  # unique-local
        "https://[fe80::1]/cb",  # link-local
        "https://[::ffff:10.0.0.1]/cb",  # IPv4-mapped private
        "https://[64:ff9b::a9fe:a9fe]/cb",  # NAT64 of 169.254.169.254
        "https://[2001:db8::1]/cb",  # documentation
    ]:
        response = configure_url(url)
        assert response.status_code == 403, url
        assert response.json()["error"] == "callback_target_forbidden"
    for url in ["https://[zz::1]/cb", "https://[1:2:3]/cb", "https://[fe80::1%25eth0]/cb"]:
        assert configure_url(url).status_code == 422, url


@pytest.mark.usefixtures("seeded")
def test_callback_configuration_is_replaced_and_shown_masked(client: TestClient) -> None:
    headers = auth(client)
    assert client.get(f"{M2M}/configure/callback", headers=headers).json() == {
        "url": None,
        "headers": {},
    }
    configure(client, headers, "https://one.example/cb", {"Authorization": "Basic abc"})
    configure(client, headers, "https://two.example/cb", {"x-b": "2"})
    shown = client.get(f"{M2M}/configure/callback", headers=headers).json()
    assert shown == {"url": "https://two.example/cb", "headers": {"x-b": "****"}}


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b"{}", "non-empty JSON array"),
        (b"[]", "non-empty JSON array"),
        (b'[{"identifier": "32470000001"}]', "identifierType"),
        (b'[{"identifier": "32470000001", "identifierType": "EID"}]', "identifierType"),
        (b'[{"identifier": "abc", "identifierType": "MSISDN"}]', "MSISDN must be"),
        (b'[{"identifier": "123", "identifierType": "ICCID"}]', "ICCID must be"),
        (b'[{"identifier": "1234", "identifierType": "IMSI"}]', "IMSI must be"),
    ],
)
def test_malformed_request_bodies_are_422(client: TestClient, body: bytes, fragment: str) -> None:
    response = client.post(
        f"{M2M}/requests/deactivation",
        headers={**auth(client), "x-callback-token": "t", "Content-Type": "application/json"},
        content=body,
    )
    assert response.status_code == 422
    assert fragment in response.json()["error_description"]


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    "path", ["/configure/callback", "/requests/deactivation"], ids=["callback", "request"]
)
@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["no-token", "bad-token"])
def test_credentials_are_checked_before_the_body(
    client: TestClient, path: str, token: str | None
) -> None:
    headers = {"x-api-key": API_KEY, "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = client.post(f"{M2M}{path}", headers=headers, content=b"{not json")
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.usefixtures("seeded")
def test_missing_callback_token_unknown_operation_and_too_many_devices(
    client: TestClient, settings: Any
) -> None:
    headers = auth(client)
    no_token = client.post(f"{M2M}/requests/deactivation", headers=headers, json=[msisdn(1)])
    assert no_token.status_code == 422
    assert "x-callback-token" in no_token.json()["error_description"]
    unknown = request(client, headers, "suspension", [msisdn(1)])
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_found"
    too_many = request(client, headers, "deactivation", [msisdn(1)] * 10_001)
    assert too_many.status_code == 413
    assert too_many.json()["error"] == "too_many_devices"
    assert "10000" in too_many.json()["error_description"]


@pytest.mark.usefixtures("seeded")
def test_unknown_tracking_number_is_404(client: TestClient) -> None:
    response = client.get(
        f"{M2M}/requests/717ccaa0-1234-5678-1234-9444e657ca96", headers=auth(client)
    )
    assert response.status_code == 404


@pytest.mark.usefixtures("seeded")
def test_per_sim_order_holds_under_concurrent_requests(
    client: TestClient, receiver: Receiver, engine: Engine
) -> None:
    headers = auth(client)
    configure(client, headers, receiver.url)
    sims = [msisdn(n) for n in range(21, 31)]  # Active demo SIMs
    operations = ["deactivation", "reactivation"] * 4 + ["termination", "activation"]
    trackings: list[str] = []

    def send(operation: str) -> None:
        response = request(client, headers, operation, sims)
        trackings.append(response.json()["TrackingNumber"])

    threads = [threading.Thread(target=send, args=(op,)) for op in operations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for tracking in trackings:
        wait_until_finished(client, headers, tracking)

    with engine.connect() as conn:
        accepted = conn.execute(
            select(lifecycle_requests.c.tracking_number, lifecycle_requests.c.operation)
            .where(lifecycle_requests.c.tracking_number.in_(trackings))
            .order_by(lifecycle_requests.c.id)
        ).all()
        history = conn.execute(
            select(sim_cards.c.msisdn, sim_history.c.tracking_number, sim_history.c.to_state)
            .join(sim_cards, sim_cards.c.id == sim_history.c.sim_id)
            .order_by(sim_history.c.id)
        ).all()
    # Replaying the requests in acceptance order gives exactly what happened to every SIM.
    for sim in sims:
        state = SimState.ACTIVE
        expected = []
        for tracking, operation in accepted:
            decision = decide(Operation(operation), state)
            if decision.new_state is not None:
                state = decision.new_state
                expected.append((tracking, state.value))
        happened = [(t, s) for m, t, s in history if m == sim["identifier"]]
        assert happened == expected
        assert sim_state(client, headers, int(sim["identifier"]) - 32470000000) == state.value


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * 100_000, 422),  # nesting beyond the parser's recursion limit
        (b"[" + b"1" * 5000 + b"]", 422),  # an integer beyond Python's digit limit
        (b" " * 3_000_000, 413),  # more bytes than 10,000 devices can need
    ],
)
def test_hostile_bodies_are_refused_not_crashed(
    client: TestClient, body: bytes, status: int
) -> None:
    response = client.post(
        f"{M2M}/requests/deactivation",
        headers={**auth(client), "x-callback-token": "t", "Content-Type": "application/json"},
        content=body,
    )
    assert response.status_code == status
    assert response.json()["error"] in ("invalid_request", "too_many_devices")


@pytest.mark.usefixtures("seeded")
def test_callback_token_must_be_printable_ascii(client: TestClient) -> None:
    response = client.post(
        f"{M2M}/requests/deactivation",
        headers={**auth(client), "x-callback-token": "encot\u00e9".encode()},  # type: ignore[dict-item]
        json=[msisdn(1)],
    )
    assert response.status_code == 422
    assert "x-callback-token" in response.json()["error_description"]


@pytest.mark.usefixtures("seeded")
def test_one_tenants_unsendable_configuration_does_not_poison_others(
    client: TestClient, receiver: Receiver, other_tenant: Tenant, engine: Engine
) -> None:
    # The other tenant's callback host cannot even be resolved.
    other = {
        "Authorization": f"Bearer {other_tenant.permanent_token}",
        "x-api-key": other_tenant.api_key,
    }
    add_sim(engine, ManualClock(), other_tenant.account_id, "32499000005")
    configure(client, other, "https://nowhere.invalid/cb")
    request(client, other, "activation", [{"identifier": "32499000005", **MSISDN}])
    headers = auth(client)
    configure(client, headers, receiver.url)
    tracking = request(client, headers, "deactivation", [msisdn(4)]).json()["TrackingNumber"]
    status = wait_until_finished(client, headers, tracking)
    assert status["devices"][0]["callback"]["status"] == "delivered"
    assert receiver.count() == 1
