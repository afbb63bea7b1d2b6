"""Idempotency-Key on the M2M API's writes, as a client retrying them sees it, on both databases:
a retry replays the first answer without doing the work again; another request with the key is
a 422; concurrent retries never do the work twice; keys expire and are per account."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from m2m.clock import ManualClock
from m2m.idempotency import KEY_LIFETIME, LOCK_DURATION, request_digest
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET, demo_iccid
from m2m.storage.tables import idempotency_keys, lifecycle_requests, sim_cards
from tests.support.api import M2M, access_token, auth, msisdn
from tests.support.sims import count
from tests.support.tenants import Tenant

KEY = "order-42"


def activate(
    client: TestClient | httpx.Client,
    headers: dict[str, str],
    devices: list[dict[str, str]] | None = None,
    *,
    key: str | bytes | None = KEY,
    callback_token: str = "t",
) -> httpx.Response:
    extra: dict[str, str | bytes] = {"Idempotency-Key": key} if key is not None else {}
    return client.post(
        f"{M2M}/requests/activation",
        headers={**headers, "x-callback-token": callback_token, **extra},
        json=devices or [msisdn(1)],
    )


def requests_made(engine: Engine) -> int:
    return count(engine, lifecycle_requests)


def test_a_retried_lifecycle_request_is_accepted_once(api: TestClient, engine: Engine) -> None:
    headers = auth(api)
    first = activate(api, headers)
    assert first.status_code == 202
    assert "Idempotent-Replayed" not in first.headers
    again = activate(api, auth(api))  # a retry may well come with a renewed token
    assert again.status_code == 202
    assert again.json() == first.json()  # the same TrackingNumber
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Content-Type"] == "application/json"
    assert requests_made(engine) == 1
    assert activate(api, headers, key=None).json() != first.json()
    assert requests_made(engine) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"devices": [msisdn(2)]},
        {"callback_token": "other"},
    ],
)
def test_the_same_key_for_another_request_is_a_422(
    api: TestClient, engine: Engine, change: dict[str, Any]
) -> None:
    headers = auth(api)
    activate(api, headers)
    answer = activate(api, headers, **change)
    assert answer.status_code == 422
    assert answer.json()["error"] == "idempotency_key_reused"
    assert "Idempotency-Key" in answer.json()["error_description"]
    assert requests_made(engine) == 1
    other_path = api.post(
        f"{M2M}/requests/deactivation",
        headers={**headers, "x-callback-token": "t", "Idempotency-Key": KEY},
        json=[msisdn(1)],
    )
    assert other_path.status_code == 422


@pytest.mark.parametrize("bad", ["x" * 256, "caf\u00e9".encode(), "tab\tkey"])
def test_a_malformed_key_is_a_422_naming_the_header(
    api: TestClient, engine: Engine, bad: str | bytes
) -> None:
    answer = activate(api, auth(api), key=bad)
    assert answer.status_code == 422
    assert "Idempotency-Key" in answer.text
    assert requests_made(engine) == 0


def test_refusals_are_replayed_like_answers(api: TestClient, engine: Engine) -> None:
    headers = auth(api)
    refused = activate(api, headers, [{"identifier": "12", "identifierType": "MSISDN"}])
    assert refused.status_code == 422
    again = activate(api, headers, [{"identifier": "12", "identifierType": "MSISDN"}])
    assert (again.status_code, again.json()) == (422, refused.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    # The key is spent on that request: a corrected body needs a new key.
    assert activate(api, headers).json()["error"] == "idempotency_key_reused"
    assert activate(api, headers, key="order-43").status_code == 202


def test_a_key_expires_after_24_hours(api: TestClient, engine: Engine, clock: ManualClock) -> None:
    headers = auth(api)
    first = activate(api, headers).json()
    clock.advance((KEY_LIFETIME - timedelta(seconds=1)).total_seconds())
    assert activate(api, auth(api)).json() == first
    clock.advance(1)
    second = activate(api, auth(api))
    assert second.status_code == 202
    assert second.json() != first
    assert requests_made(engine) == 2


def test_a_request_still_running_answers_409_until_its_lock_ends(
    api: TestClient, engine: Engine, clock: ManualClock
) -> None:
    """As if a first attempt were running, or had died before answering (its lock taken)."""
    headers = auth(api)
    body = b'[{"identifier":"32470000001","identifierType":"MSISDN"}]\nt'
    with engine.begin() as conn:
        conn.execute(
            insert(idempotency_keys).values(
                account_id=1,
                key=KEY,
                request_digest=request_digest("POST", f"{M2M}/requests/activation", body),
                created_at=clock.now(),
                locked_until=clock.now() + LOCK_DURATION,
            )
        )
    answer = api.post(
        f"{M2M}/requests/activation",
        headers={**headers, "x-callback-token": "t", "Idempotency-Key": KEY},
        content=body[:-2],
    )
    assert answer.status_code == 409
    assert answer.json()["error"] == "idempotency_key_in_use"
    assert int(answer.headers["Retry-After"]) == LOCK_DURATION.total_seconds()
    assert requests_made(engine) == 0
    clock.advance(LOCK_DURATION.total_seconds())
    # The first attempt never answered: the retry runs.
    assert activate(api, headers).status_code == 202
    assert requests_made(engine) == 1


def test_keys_are_per_account(
    api: TestClient, engine: Engine, tenant: Tenant, clock: ManualClock
) -> None:
    mine = activate(api, auth(api))
    token = access_token(api, tenant.client_id, tenant.client_secret)
    theirs = activate(api, {"Authorization": f"Bearer {token}", "x-api-key": tenant.api_key})
    assert theirs.status_code == 202
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.json() != mine.json()
    assert requests_made(engine) == 2


def test_concurrent_retries_make_one_request(
    live_server: str, engine: Engine, seeded: None
) -> None:
    with httpx.Client(base_url=live_server) as http:
        token = access_token(http, CLIENT_ID, CLIENT_SECRET)  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {token}", "x-api-key": API_KEY}
    answers: list[httpx.Response] = []
    start = threading.Barrier(6)

    def retry() -> None:
        with httpx.Client(base_url=live_server, timeout=30) as http:
            start.wait()
            answers.append(activate(http, headers, [msisdn(n) for n in range(1, 50)]))

    threads = [threading.Thread(target=retry) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} <= {202, 409}
    accepted = {a.json()["TrackingNumber"] for a in answers if a.status_code == 202}
    assert len(accepted) == 1
    assert requests_made(engine) == 1


def test_a_retried_update_is_applied_once(api: TestClient, engine: Engine) -> None:
    headers = {**auth(api), "Content-Type": "application/merge-patch+json", "Idempotency-Key": KEY}
    url = f"{M2M}/simcards/{demo_iccid(1)}"
    first = api.patch(url, headers=headers, content=b'{"CostCenter": "a"}')
    again = api.patch(url, headers={**headers, "If-Match": '"1"'}, content=b'{"CostCenter": "a"}')
    # If-Match is not part of the request's identity: the retry gets the first answer.
    assert (again.status_code, again.json()) == (200, first.json())
    assert again.headers["ETag"] == first.headers["ETag"] == '"2"'
    assert again.headers["Idempotent-Replayed"] == "true"
    with engine.connect() as conn:
        version = conn.execute(
            sim_cards.select()
            .with_only_columns(sim_cards.c.version)
            .where(sim_cards.c.iccid == demo_iccid(1))
        ).scalar_one()
    assert version == 2


def test_the_callback_configuration_takes_a_key(api: TestClient) -> None:
    headers = {**auth(api), "Idempotency-Key": KEY}
    url = f"{M2M}/configure/callback"
    first = api.post(url, headers=headers, json={"url": "http://127.0.0.1:9/a"})
    again = api.post(url, headers=headers, json={"url": "http://127.0.0.1:9/a"})
    assert first.status_code == again.status_code == 204
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api.post(url, headers=headers, json={"url": "http://127.0.0.1:9/b"})
    assert other.status_code == 422
