"""POST /token and POST /revoke: the documentation's rules and RFC 6749 §5.2 / RFC 7009."""

from __future__ import annotations

import base64
import threading

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from m2m.asgi import create_app
from m2m.clock import ManualClock
from m2m.settings import Settings
from tests.support.tenants import Tenant

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def token_by_query(client: TestClient, tenant: Tenant) -> httpx.Response:
    """The documentation's curl, verbatim but for the host."""
    return client.post(
        "/token?grant_type=client_credentials&scope=openid"
        f"&client_id={tenant.client_id}&client_secret={tenant.client_secret}"
        "&Accept=application/json",
        headers=FORM,
    )


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def sims_status(client: TestClient, token: str, api_key: str) -> int:
    response = client.get(
        "/m2m/1.0.0/simcards",
        params={"msisdn": "32470000001"},
        headers={"Authorization": f"Bearer {token}", "x-api-key": api_key},
    )
    return response.status_code


def test_documented_curl_returns_the_documented_answer(client: TestClient, tenant: Tenant) -> None:
    response = token_by_query(client, tenant)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"scope", "token_type", "expires_in", "access_token"}
    assert body["scope"] == "openid"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert len(body["access_token"]) >= 32
    assert response.headers["cache-control"] == "no-store"


def test_form_body_and_basic_give_the_same_single_token(client: TestClient, tenant: Tenant) -> None:
    by_query = token_by_query(client, tenant).json()["access_token"]
    by_form = client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": tenant.client_id,
            "client_secret": tenant.client_secret,
        },
    )
    by_basic = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "openid"},
        headers=basic(tenant.client_id, tenant.client_secret),
    )
    assert by_form.status_code == by_basic.status_code == 200
    assert by_form.json()["access_token"] == by_query
    assert by_basic.json()["access_token"] == by_query


def test_single_active_token_counts_down_then_renews(
    client: TestClient, tenant: Tenant, clock: ManualClock
) -> None:
    first = token_by_query(client, tenant).json()
    clock.advance(1000)
    again = token_by_query(client, tenant).json()
    assert again["access_token"] == first["access_token"]
    assert again["expires_in"] == 2600
    assert sims_status(client, first["access_token"], tenant.api_key) != 401

    clock.advance(2600)  # expired now
    assert sims_status(client, first["access_token"], tenant.api_key) == 401
    renewed = token_by_query(client, tenant).json()
    assert renewed["access_token"] != first["access_token"]
    assert renewed["expires_in"] == 3600


def test_token_lifetime_is_configurable(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    short = settings.model_copy(update={"token_ttl_seconds": 60})
    with TestClient(create_app(short, engine=engine, clock=clock)) as client:
        assert token_by_query(client, tenant).json()["expires_in"] == 60


def test_concurrent_requests_share_one_token(live_server: str, tenant: Tenant) -> None:
    tokens: list[str] = []

    def ask() -> None:
        with httpx.Client(base_url=live_server) as http:
            response = http.post(
                "/token",
                data={"grant_type": "client_credentials"},
                auth=(tenant.client_id, tenant.client_secret),
            )
            tokens.append(response.json()["access_token"])

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(tokens) == 8
    assert len(set(tokens)) == 1


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"scope": "openid"}, 400, "invalid_request"),  # no grant_type
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "scope": "admin"}, 400, "invalid_scope"),
    ],
)
def test_rfc6749_request_errors(
    client: TestClient, tenant: Tenant, params: dict[str, str], status: int, error: str
) -> None:
    response = client.post(
        "/token",
        data={**params, "client_id": tenant.client_id, "client_secret": tenant.client_secret},
    )
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"client_id": "nobody", "client_secret": "nothing"},
        {"client_id": "__tenant__", "client_secret": "wrong"},
        {"client_id": "__tenant__"},
    ],
)
def test_bad_client_credentials_are_invalid_client(
    client: TestClient, tenant: Tenant, credentials: dict[str, str]
) -> None:
    data = {k: tenant.client_id if v == "__tenant__" else v for k, v in credentials.items()}
    response = client.post("/token", data={"grant_type": "client_credentials", **data})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" not in response.headers  # Basic was not used


def test_bad_basic_credentials_get_a_basic_challenge(client: TestClient, tenant: Tenant) -> None:
    wrong = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(tenant.client_id, "wrong"),
    )
    garbled = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic !!!not-base64"},
    )
    for response in (wrong, garbled):
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic")


def test_two_client_authentication_methods_fail_authentication(
    client: TestClient, tenant: Tenant
) -> None:
    both = client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_secret": tenant.client_secret},
        headers=basic(tenant.client_id, tenant.client_secret),
    )
    assert both.status_code == 401
    assert both.json()["error"] == "invalid_client"
    assert "one client authentication method" in both.json()["error_description"]


def test_form_body_overrides_the_query_string(client: TestClient, tenant: Tenant) -> None:
    response = client.post(
        f"/token?grant_type=client_credentials&client_id={tenant.client_id}&client_secret=old",
        data={"client_secret": tenant.client_secret},
    )
    assert response.status_code == 200


def test_malformed_parameters_are_invalid_request(client: TestClient, tenant: Tenant) -> None:
    creds = f"client_id={tenant.client_id}&client_secret={tenant.client_secret}"
    repeated = client.post(
        "/token",
        content=f"grant_type=client_credentials&grant_type=password&{creds}",
        headers=FORM,
    )
    json_body = client.post("/token", json={"grant_type": "client_credentials"})
    not_utf8 = client.post("/token", content=b"grant_type=\xff\xfe", headers=FORM)
    for response in (repeated, json_body, not_utf8):
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"


def test_revoke_then_next_token_is_new(client: TestClient, tenant: Tenant) -> None:
    old = token_by_query(client, tenant).json()["access_token"]
    response = client.post(
        "/revoke",
        data={"token": old, "client_id": tenant.client_id, "client_secret": tenant.client_secret},
        headers=FORM,
    )
    assert response.status_code == 200
    assert sims_status(client, old, tenant.api_key) == 401
    new = token_by_query(client, tenant).json()["access_token"]
    assert new != old
    assert sims_status(client, new, tenant.api_key) != 401


def test_revoke_with_basic(client: TestClient, tenant: Tenant) -> None:
    old = token_by_query(client, tenant).json()["access_token"]
    response = client.post(
        "/revoke", data={"token": old}, headers=basic(tenant.client_id, tenant.client_secret)
    )
    assert response.status_code == 200
    assert sims_status(client, old, tenant.api_key) == 401


def test_revoke_unknown_or_repeated_token_is_200(client: TestClient, tenant: Tenant) -> None:
    creds = {"client_id": tenant.client_id, "client_secret": tenant.client_secret}
    token = token_by_query(client, tenant).json()["access_token"]
    for value in ("never-issued", token, token):
        response = client.post("/revoke", data={"token": value, **creds})
        assert response.status_code == 200


def test_revoke_says_a_permanent_token_is_not_revoked_there(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """RFC 7009 §2.2.1: a token type the endpoint does not revoke is unsupported_token_type,
    not a 200 that leaves it working; another account's permanent token tells nothing."""
    creds = {"client_id": tenant.client_id, "client_secret": tenant.client_secret}
    own = client.post("/revoke", data={"token": tenant.permanent_token, **creds})
    assert own.status_code == 400
    assert own.json()["error"] == "unsupported_token_type"
    assert "TOKEN page" in own.json()["error_description"]
    assert sims_status(client, tenant.permanent_token, tenant.api_key) != 401

    others = client.post("/revoke", data={"token": other_tenant.permanent_token, **creds})
    assert others.status_code == 200
    assert sims_status(client, other_tenant.permanent_token, other_tenant.api_key) != 401


def test_revoke_cannot_touch_another_clients_token(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    victim = token_by_query(client, other_tenant).json()["access_token"]
    response = client.post(
        "/revoke",
        data={
            "token": victim,
            "client_id": tenant.client_id,
            "client_secret": tenant.client_secret,
        },
    )
    assert response.status_code == 200  # RFC 7009: no hint whether the token exists
    assert sims_status(client, victim, other_tenant.api_key) != 401


def test_revoke_errors(client: TestClient, tenant: Tenant) -> None:
    bad_client = client.post(
        "/revoke", data={"token": "x", "client_id": tenant.client_id, "client_secret": "no"}
    )
    assert bad_client.status_code == 401
    assert bad_client.json()["error"] == "invalid_client"
    no_token = client.post(
        "/revoke", data={"client_id": tenant.client_id, "client_secret": tenant.client_secret}
    )
    assert no_token.status_code == 400
    assert no_token.json()["error"] == "invalid_request"


def test_failing_attempts_past_the_budget_get_429_while_the_valid_secret_is_served(
    client: TestClient, tenant: Tenant, clock: ManualClock
) -> None:
    """Anyone who knows a client_id can fail with it, but cannot lock its application out."""
    wrong = {"grant_type": "client_credentials", "client_id": tenant.client_id}
    for _ in range(10):
        response = client.post("/token", data={**wrong, "client_secret": "guess"})
        assert response.status_code == 401
    throttled = client.post("/token", data={**wrong, "client_secret": "guess"})
    assert throttled.status_code == 429
    assert throttled.json()["error"] == "too_many_failures"
    assert 1 <= int(throttled.headers["retry-after"]) <= 60

    assert client.post("/token", data={**wrong, "client_secret": tenant.client_secret}).is_success
    revoke = client.post(
        "/revoke",
        data={"token": "x", "client_id": tenant.client_id, "client_secret": tenant.client_secret},
    )
    assert revoke.status_code == 200

    clock.advance(61)
    again = client.post("/token", data={**wrong, "client_secret": "guess"})
    assert again.status_code == 401


def test_an_address_that_spent_its_budget_is_refused_only_when_it_fails(
    client: TestClient, tenant: Tenant
) -> None:
    """Many clients behind one NAT: failures from the address are throttled across client_ids,
    and a valid client from the same address is still served."""
    for n in range(100):
        failed = client.post(
            "/token",
            data={"grant_type": "client_credentials", "client_id": f"x{n}", "client_secret": "s"},
        )
        assert failed.status_code == 401
    another = client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": "fresh", "client_secret": "s"},
    )
    assert another.status_code == 429
    assert token_by_query(client, tenant).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/token", "POST"),
        ("PUT", "/revoke", "POST"),
        ("POST", "/m2m/1.0.0/simcards", "GET"),
        ("DELETE", "/m2m/1.0.0/configure/callback", "GET, POST"),
        ("GET", "/m2m/1.0.0/requests/activation", "POST"),
    ],
)
def test_a_wrong_method_is_a_json_405_naming_the_allowed_ones(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    answer = client.request(method, path)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == allowed
    assert answer.json()["error"] == "method_not_allowed"
