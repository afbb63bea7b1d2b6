"""GET /m2m/1.0.0/simcards and the M2M API's authentication."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from m2m import accounts, sandbox
from m2m.audit import ADMIN_CLI
from m2m.clock import ManualClock
from m2m.identifiers import MSISDN_PATTERN
from m2m.sandbox import API_KEY
from tests.support.api import access_token, get_sim
from tests.support.sims import add_sim
from tests.support.tenants import Tenant

DOCUMENTED_SAMPLE = json.loads((Path(__file__).parent / "data" / "documented_sim.json").read_text())


def shape(value: Any) -> Any:
    """The structure of a JSON value: key names and nesting, with types instead of values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


@pytest.mark.usefixtures("seeded")
def test_profile_has_every_documented_field(client: TestClient) -> None:
    response = get_sim(client, "32470000001", access_token(client))
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert len(body) == 1
    assert shape(body[0]) == shape(DOCUMENTED_SAMPLE[0])
    assert list(body[0]) == list(DOCUMENTED_SAMPLE[0])  # same order as the documentation
    assert body[0]["State"] == "Active"
    assert body[0]["DataService"]["DailyTreshold"] > 0
    assert body[0]["Device"]["IdentifierType"] == "IMSI"


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("msisdn", "state"),
    [("32470000050", "Active"), ("32470000051", "Ready"), ("32470000100", "Deactivated")],
)
def test_sandbox_states(client: TestClient, msisdn: str, state: str) -> None:
    assert get_sim(client, msisdn, access_token(client)).json()[0]["State"] == state


@pytest.mark.usefixtures("seeded")
def test_leading_plus_is_tolerated(client: TestClient) -> None:
    token = access_token(client)
    plain = get_sim(client, "32470000007", token).json()
    for written in ("%2B32470000007", "+32470000007"):  # escaped, or typed as it is
        plus = get_sim(client, written, token)
        assert plus.status_code == 200, written
        assert plus.json() == plain


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("query", ["", "?msisdn=abc", "?msisdn=%2B%2B1"])
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token", "x-api-key": API_KEY}],
    ids=["no-credentials", "bad-token"],
)
def test_credentials_are_checked_before_the_msisdn(
    client: TestClient, query: str, headers: dict[str, str]
) -> None:
    response = client.get(f"/m2m/1.0.0/simcards{query}", headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.usefixtures("seeded")
def test_a_foreign_api_key_is_refused_before_the_msisdn(
    client: TestClient, other_tenant: Tenant
) -> None:
    headers = {
        "Authorization": f"Bearer {access_token(client)}",
        "x-api-key": other_tenant.api_key,
    }
    response = client.get("/m2m/1.0.0/simcards?msisdn=abc", headers=headers)
    assert response.status_code in (401, 403), response.text


@pytest.mark.usefixtures("seeded")
def test_unknown_and_foreign_msisdn_look_the_same(
    client: TestClient, engine: Engine, clock: ManualClock, other_tenant: Tenant
) -> None:
    add_sim(engine, clock, other_tenant.account_id, "32499000001")
    token = access_token(client)
    foreign = get_sim(client, "32499000001", token)
    unknown = get_sim(client, "32499000002", token)
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"] == unknown.json()["error"] == "not_found"
    # The owner does see it.
    owner = get_sim(client, "32499000001", other_tenant.permanent_token, other_tenant.api_key)
    assert owner.status_code == 200


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    "query", ["?msisdn=", "?msisdn=abc", "?msisdn=123", "?msisdn=3247000000100000"]
)
def test_missing_or_malformed_msisdn(client: TestClient, query: str) -> None:
    response = client.get(
        f"/m2m/1.0.0/simcards{query}",
        headers={"x-api-key": API_KEY, "Authorization": f"Bearer {access_token(client)}"},
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert "msisdn" in response.json()["error_description"]


@pytest.mark.usefixtures("seeded")
def test_authentication_errors(client: TestClient, tenant: Tenant) -> None:
    token = access_token(client)
    url = "/m2m/1.0.0/simcards?msisdn=32470000001"

    missing_token = client.get(url, headers={"x-api-key": API_KEY})
    assert missing_token.status_code == 401
    assert missing_token.json()["error"] == "missing_token"
    assert missing_token.headers["www-authenticate"].startswith("Bearer")

    bad_token = client.get(url, headers={"x-api-key": API_KEY, "Authorization": "Bearer nope"})
    assert bad_token.status_code == 401
    assert bad_token.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in bad_token.headers["www-authenticate"]

    not_bearer = client.get(url, headers={"x-api-key": API_KEY, "Authorization": f"Basic {token}"})
    assert not_bearer.status_code == 401

    auth = {"Authorization": f"Bearer {token}"}
    missing_key = client.get(url, headers=auth)
    assert missing_key.status_code == 401
    assert missing_key.json()["error"] == "missing_api_key"

    bad_key = client.get(url, headers={**auth, "x-api-key": "nope"})
    assert bad_key.status_code == 401
    assert bad_key.json()["error"] == "invalid_api_key"

    foreign_key = client.get(url, headers={**auth, "x-api-key": tenant.api_key})
    assert foreign_key.status_code == 403
    assert foreign_key.json()["error"] == "api_key_mismatch"


def test_permanent_token_works_until_deleted(
    client: TestClient, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    add_sim(engine, clock, tenant.account_id, "32499000010")
    assert get_sim(client, "32499000010", tenant.permanent_token, tenant.api_key).status_code == 200
    clock.advance(400 * 86400)  # permanent tokens do not expire
    assert get_sim(client, "32499000010", tenant.permanent_token, tenant.api_key).status_code == 200
    second = accounts.create_permanent_token(
        engine, clock, tenant.account_id, "second", actor=ADMIN_CLI
    )
    accounts.delete_permanent_token(engine, clock, second.id, actor=ADMIN_CLI)
    assert get_sim(client, "32499000010", second.secret, tenant.api_key).status_code == 401
    assert get_sim(client, "32499000010", tenant.permanent_token, tenant.api_key).status_code == 200


def test_suspended_subscription_is_403_and_resumes(
    client: TestClient, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    add_sim(engine, clock, tenant.account_id, "32499000020")
    accounts.set_subscription(engine, clock, tenant.account_id, False, actor=ADMIN_CLI)
    response = get_sim(client, "32499000020", tenant.permanent_token, tenant.api_key)
    assert response.status_code == 403
    assert response.json()["error"] == "subscription_suspended"
    accounts.set_subscription(engine, clock, tenant.account_id, True, actor=ADMIN_CLI)
    assert get_sim(client, "32499000020", tenant.permanent_token, tenant.api_key).status_code == 200


def test_revoked_api_key_is_refused(
    client: TestClient, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    add_sim(engine, clock, tenant.account_id, "32499000030")
    second = accounts.create_api_key(engine, clock, tenant.account_id, actor=ADMIN_CLI)
    assert get_sim(client, "32499000030", tenant.permanent_token, second.secret).status_code == 200
    accounts.revoke_api_key(engine, clock, second.id, actor=ADMIN_CLI)
    response = get_sim(client, "32499000030", tenant.permanent_token, second.secret)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_api_key"


@pytest.mark.usefixtures("seeded")
def test_repeated_bad_credentials_are_throttled_then_forgiven(
    client: TestClient, clock: ManualClock
) -> None:
    token = access_token(client)
    for _ in range(10):
        assert get_sim(client, "32470000001", "guess").status_code == 401
    throttled = get_sim(client, "32470000001", "guess")
    assert throttled.status_code == 429
    assert throttled.json()["error"] == "too_many_failures"
    assert int(throttled.headers["retry-after"]) >= 1
    # The valid token from the same address is served all along.
    assert get_sim(client, "32470000001", token).status_code == 200
    clock.advance(61)
    assert get_sim(client, "32470000001", "guess").status_code == 401


@pytest.mark.usefixtures("seeded")
def test_calls_without_any_credential_are_not_charged(client: TestClient) -> None:
    """Nothing presented, nothing guessed: a bare call is always the 401 that says so, and it
    does not spend the address's budget for the callers that do guess."""
    for _ in range(20):
        bare = client.get("/m2m/1.0.0/simcards?msisdn=32470000001")
        assert bare.status_code == 401
        assert bare.json()["error"] == "missing_token"
    assert get_sim(client, "32470000001", "guess").status_code == 401


@pytest.mark.usefixtures("seeded")
def test_fifty_bad_attempts_from_an_address_do_not_lock_out_a_valid_caller_there(
    client: TestClient,
) -> None:
    """A company behind one NAT address: one misconfigured device fails again and again, and
    every other device with valid credentials keeps being served."""
    token = access_token(client)
    answers = [get_sim(client, "32470000001", f"wrong-{n % 5}").status_code for n in range(50)]
    assert set(answers) <= {401, 429}
    assert answers[:10] == [401] * 10
    assert 429 in answers
    for _ in range(3):
        assert get_sim(client, "32470000001", token).status_code == 200


@pytest.mark.usefixtures("seeded")
def test_body_bytes_are_the_compact_document(client: TestClient) -> None:
    """The answer is built from the stored document without a model: check it byte for byte."""
    response = get_sim(client, "32470000001", access_token(client))
    profile = sandbox.demo_profile(1)
    document = {
        **{key: profile[key] for key in list(DOCUMENTED_SAMPLE[0])[:5]},
        "CostCenter": "CC-1100",
        "State": "Active",
        "Device": {"Identifier": sandbox.demo_imsi(1), "IdentifierType": "IMSI"},
    }
    expected = json.dumps([document], ensure_ascii=False, separators=(",", ":")).encode()
    assert response.content == expected
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("stored", "answered"),
    [
        pytest.param({}, {}, id="none-set"),
        pytest.param({"Custom Field 3": "rack B"}, {"Custom Field 3": "rack B"}, id="one-set"),
        # Stored before the import refused other keys: the answer keeps the documented shape.
        pytest.param({"x": "y", "Custom Field 7": "z"}, {"Custom Field 7": "z"}, id="unknown-key"),
    ],
)
def test_custom_fields_always_carry_the_seven_documented_keys_in_order(
    client: TestClient,
    engine: Engine,
    clock: ManualClock,
    tenant: Tenant,
    stored: dict[str, str],
    answered: dict[str, str],
) -> None:
    """A client written against the documentation reads ``CustomFields["Custom Field 3"]``,
    whichever fields the SIM's import set."""
    add_sim(engine, clock, tenant.account_id, "32499000040", {"CustomFields": stored})

    response = get_sim(client, "32499000040", tenant.permanent_token, tenant.api_key)

    documented = list(DOCUMENTED_SAMPLE[0]["CustomFields"])
    custom_fields = response.json()[0]["CustomFields"]
    assert list(custom_fields) == documented
    assert custom_fields == {name: answered.get(name, "") for name in documented}


def test_openapi_describes_what_the_route_reads_itself(client: TestClient) -> None:
    """The route parses its query and credentials itself (the hot path): the document must
    still describe them as FastAPI would."""
    operation = client.get("/openapi.json").json()["paths"]["/m2m/1.0.0/simcards"]["get"]
    parameter = operation["parameters"][0]
    assert parameter["name"] == "msisdn"
    assert parameter["in"] == "query"
    assert parameter["required"] is False  # without it, the caller's SIMs are listed
    assert {"iccid", "imsi", "state", "label", "cursor", "limit"} <= {
        p["name"] for p in operation["parameters"]
    }
    assert parameter["schema"]["pattern"] == MSISDN_PATTERN
    assert operation["security"] == [{"HTTPBearer": [], "APIKeyHeader": []}]  # both at once
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schemes)
