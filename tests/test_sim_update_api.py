"""PATCH /m2m/1.0.0/simcards/{iccid}: a SIM's editable fields, as an integrator updates them, on
both databases (merge-patch edge cases, forbidden fields, limits, ETag and If-Match, tenant
isolation, the audit entry)."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from m2m.clock import ManualClock
from m2m.labels import MAX_LABELS
from m2m.profile import MAX_THRESHOLD
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET, demo_iccid
from m2m.settings import Settings
from m2m.storage.tables import audit_events, sim_cards, sim_labels
from tests.support.api import M2M, access_token, auth, get_sim
from tests.support.sims import add_sim
from tests.support.tenants import Tenant
from tests.support.worker import drain

ICCID = demo_iccid(1)
MSISDN = "32470000001"
MERGE_PATCH = "application/merge-patch+json"


def patch(
    client: TestClient,
    headers: dict[str, str],
    body: object,
    *,
    iccid: str = ICCID,
    content_type: str = MERGE_PATCH,
    **extra: str,
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.patch(
        f"{M2M}/simcards/{iccid}",
        headers={**headers, "Content-Type": content_type, **extra},
        content=raw,
    )


def stored(engine: Engine, iccid: str = ICCID) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(sim_cards.c.version, sim_cards.c.labels, sim_cards.c.updated_at).where(
                sim_cards.c.iccid == iccid
            )
        ).one()


def label_rows(engine: Engine, iccid: str = ICCID) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(sim_labels.c.key, sim_labels.c.value)
            .join(sim_cards, sim_cards.c.id == sim_labels.c.sim_id)
            .where(sim_cards.c.iccid == iccid)
        )
        return {str(key): str(value) for key, value in rows}


def audit_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    audit_events.c.account_id,
                    audit_events.c.actor_kind,
                    audit_events.c.actor,
                    audit_events.c.action,
                    audit_events.c.subject_kind,
                    audit_events.c.subject,
                    audit_events.c.changes,
                    audit_events.c.request_id,
                )
                # The SIM updates (the tenant's setup is in the trail too).
                .where(audit_events.c.action == "sim.updated")
                .order_by(audit_events.c.id)
            )
        )


def test_an_update_answers_the_new_profile_with_its_etag(api: TestClient, engine: Engine) -> None:
    headers = auth(api)
    before = get_sim(api, MSISDN, headers["Authorization"][7:]).json()[0]
    answer = patch(
        api,
        headers,
        {
            "CostCenter": "fleet-7",
            "CustomFields": {"Custom Field 3": "blue"},
            "DataService": {"DailyTreshold": 5000},
            "SMSService": {"MonthlyTreshold": 90},
            "Labels": {"site": "ghent", "fleet/region": "eu-west"},
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["ETag"] == '"2"'
    document = answer.json()
    assert list(document)[:8] == list(before)  # the documented keys, in their order, first
    assert document["ICCID"] == ICCID
    assert document["MSISDN"] == MSISDN
    assert document["Labels"] == {"site": "ghent", "fleet/region": "eu-west"}
    assert document["CostCenter"] == "fleet-7"
    assert document["CustomFields"]["Custom Field 3"] == "blue"
    assert document["DataService"]["DailyTreshold"] == 5000
    assert document["DataService"]["Plan"] == before["DataService"]["Plan"]
    assert document["SMSService"]["MonthlyTreshold"] == 90
    assert document["State"] == before["State"]
    # The documented read shows the change, and no extra key.
    after = get_sim(api, MSISDN, headers["Authorization"][7:]).json()[0]
    assert after == {k: v for k, v in document.items() if k not in ("ICCID", "MSISDN", "Labels")}
    version, labels, _ = stored(engine)
    assert version == 2
    assert labels == {"site": "ghent", "fleet/region": "eu-west"}
    assert label_rows(engine) == labels


def test_null_removes_and_objects_merge(api: TestClient, engine: Engine) -> None:
    headers = auth(api)
    patch(api, headers, {"CostCenter": "x", "Labels": {"a": "1", "b": "2", "c": "3"}})
    answer = patch(api, headers, {"CostCenter": None, "Labels": {"a": None, "b": "two"}})
    assert answer.json()["CostCenter"] == ""
    assert answer.json()["Labels"] == {"b": "two", "c": "3"}
    assert label_rows(engine) == {"b": "two", "c": "3"}
    answer = patch(api, headers, {"Labels": None, "DataService": {"DailyTreshold": None}})
    assert answer.json()["Labels"] == {}
    assert answer.json()["DataService"]["DailyTreshold"] == 0
    assert label_rows(engine) == {}


def test_a_patch_that_changes_nothing_changes_nothing(api: TestClient, engine: Engine) -> None:
    headers = auth(api)
    patch(api, headers, {"Labels": {"a": "1"}})
    version, _, updated_at = stored(engine)
    for body in ({}, {"Labels": {"a": "1"}}, {"Labels": {"gone": None}}):
        answer = patch(api, headers, body)
        assert answer.status_code == 200
        assert answer.headers["ETag"] == f'"{version}"'
    assert stored(engine) == (version, {"a": "1"}, updated_at)
    assert len(audit_rows(engine)) == 1


def test_the_audit_entry_names_the_caller_the_fields_and_the_request(
    api: TestClient, engine: Engine
) -> None:
    headers = auth(api)
    cost_center = patch(api, headers, {}).json()["CostCenter"]
    patch(
        api,
        headers,
        {"CostCenter": "c1", "Labels": {"k": "v"}},
        **{"X-Request-ID": "req-42"},
    )
    second_answer = patch(
        api, headers, {"CostCenter": "c2"}, **{"X-Request-ID": "bad id with spaces"}
    )
    first, second = audit_rows(engine)
    assert first.actor_kind == "application"
    assert first.actor == CLIENT_ID
    assert (first.action, first.subject_kind, first.subject) == ("sim.updated", "sim", ICCID)
    assert first.changes == {
        "CostCenter": {"before": cost_center, "after": "c1"},
        "Labels.k": {"before": None, "after": "v"},
    }
    assert first.request_id == "req-42"
    assert second.changes == {"CostCenter": {"before": "c1", "after": "c2"}}
    # Not the caller's (not one token): the one the server gave the call instead, as answered.
    assert second.request_id == second_answer.headers["x-request-id"]
    assert " " not in second.request_id


def test_a_permanent_token_is_named_in_the_audit_trail(
    client: TestClient, engine: Engine, tenant: Tenant, clock: ManualClock
) -> None:
    add_sim(engine, clock, tenant.account_id, "32490000001")
    headers = {"Authorization": f"Bearer {tenant.permanent_token}", "x-api-key": tenant.api_key}
    answer = patch(client, headers, {"CostCenter": "x"}, iccid="8932019999490000001")
    assert answer.status_code == 200, answer.text
    [entry] = audit_rows(engine)
    assert (entry.account_id, entry.actor_kind, entry.actor) == (tenant.account_id, "token", "ci")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        (b"{not json", MERGE_PATCH, 422, "not valid JSON"),
        (b"", MERGE_PATCH, 422, "not valid JSON"),
        (b"[]", MERGE_PATCH, 422, "must be a JSON object"),
        (b"null", MERGE_PATCH, 422, "must be a JSON object"),
        (b'"x"', MERGE_PATCH, 422, "must be a JSON object"),
        (b"{}", "text/plain", 415, "merge-patch+json"),
        (b"{}", "application/x-www-form-urlencoded", 415, "merge-patch+json"),
    ],
)
def test_bodies_that_are_not_a_merge_patch(
    api: TestClient, body: bytes, content_type: str, status: int, fragment: str
) -> None:
    answer = patch(api, auth(api), body, content_type=content_type)
    assert answer.status_code == status
    assert fragment in answer.json()["error_description"]


def test_application_json_is_accepted_too(api: TestClient) -> None:
    answer = patch(api, auth(api), {"CostCenter": "j"}, content_type="application/json")
    assert answer.json()["CostCenter"] == "j"


@pytest.mark.parametrize(
    ("body", "field", "why"),
    [
        ({"State": "Active"}, "State", "lifecycle requests"),
        ({"AccessPoints": []}, "AccessPoints", "operator"),
        ({"Device": {"Identifier": "1", "IdentifierType": "IMSI"}}, "Device", "identity"),
        ({"ICCID": "1"}, "ICCID", "identity"),
        ({"MSISDN": "1"}, "MSISDN", "identity"),
        ({"DataService": {"Plan": {"Code": "X"}}}, "DataService.Plan", "operator"),
        ({"DataService": {"ServiceAreas": []}}, "DataService.ServiceAreas", "operator"),
        ({"DataService": {"Features": []}}, "DataService.Features", "operator"),
        ({"SMSService": {"PlanCode": "X"}}, "SMSService.PlanCode", "operator"),
        ({"VoiceService": {"FeatureCodes": []}}, "VoiceService.FeatureCodes", "operator"),
        ({"Colour": "red"}, "Colour", "not a field"),
        ({"CustomFields": {"Custom Field 9": "x"}}, "CustomFields.Custom Field 9", "custom field"),
    ],
)
def test_every_field_a_customer_cannot_change_is_a_422_that_says_why(
    api: TestClient, engine: Engine, body: dict[str, Any], field: str, why: str
) -> None:
    answer = patch(api, auth(api), body)
    assert answer.status_code == 422
    error = answer.json()
    assert error["error"] == "invalid_request"
    [detail] = error["details"]
    assert detail["field"] == field
    assert why in detail["problem"]
    assert stored(engine)[0] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"CostCenter": "x" * 201}, "CostCenter"),
        ({"CostCenter": "a\u0000b"}, "CostCenter"),
        ({"CostCenter": 3}, "CostCenter"),
        ({"DataService": {"DailyTreshold": -1}}, "DataService.DailyTreshold"),
        ({"DataService": {"MonthlyTreshold": MAX_THRESHOLD + 1}}, "DataService.MonthlyTreshold"),
        ({"VoiceService": {"DailyTreshold": "5"}}, "VoiceService.DailyTreshold"),
        ({"Labels": {f"k{n}": "v" for n in range(MAX_LABELS + 1)}}, "Labels"),
        ({"Labels": {"no spaces": "v"}}, "Labels"),
        ({"Labels": {"k": "v" * 201}}, "Labels"),
        ({"Labels": ["k"]}, "Labels"),
        ({"CustomFields": {"Custom Field 1": "x" * 201}}, "CustomFields.Custom Field 1"),
    ],
)
def test_limits_are_the_imports(api: TestClient, body: dict[str, Any], field: str) -> None:
    answer = patch(api, auth(api), body)
    assert answer.status_code == 422
    assert field in [d["field"] for d in answer.json()["details"]]


def test_the_largest_valid_patch_fits_the_body_limit(api: TestClient) -> None:
    # Every label and string at its longest, in characters JSON escapes as \uXXXX.
    wide = "\u00e9" * 200
    body = {
        "CostCenter": wide,
        "CustomFields": {f"Custom Field {n}": wide for n in range(1, 8)},
        "Labels": {f"k{n:02d}" + "x" * 61: wide for n in range(MAX_LABELS)},
    }
    raw = json.dumps(body).encode()  # ensure_ascii: every é is \u00e9
    answer = patch(api, auth(api), raw)
    assert answer.status_code == 200, answer.text[:300]
    assert len(answer.json()["Labels"]) == MAX_LABELS


def test_if_match_makes_the_update_conditional(api: TestClient, engine: Engine) -> None:
    headers = auth(api)
    first = patch(api, headers, {"CostCenter": "a"}, **{"If-Match": '"1"'})
    assert first.status_code == 200
    assert first.headers["ETag"] == '"2"'
    stale = patch(api, headers, {"CostCenter": "b"}, **{"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["error"] == "precondition_failed"
    assert '"2"' in stale.json()["error_description"]
    for refused in ('W/"2"', "2", '"x"', '"3", "4"'):
        assert patch(api, headers, {"CostCenter": "b"}, **{"If-Match": refused}).status_code == 412
    assert patch(api, headers, {"CostCenter": "b"}, **{"If-Match": '"9", "2"'}).status_code == 200
    assert patch(api, headers, {"CostCenter": "c"}, **{"If-Match": "*"}).status_code == 200
    assert stored(engine)[0] == 4


def test_a_lifecycle_change_moves_the_etag_on(
    api: TestClient, engine: Engine, clock: ManualClock, quiet: Settings
) -> None:
    headers = auth(api)
    answer = patch(api, headers, {})
    etag = answer.headers["ETag"]
    operation = {"Ready": "activation", "Active": "deactivation"}.get(
        answer.json()["State"], "reactivation"
    )
    accepted = api.post(
        f"{M2M}/requests/{operation}",
        headers={**headers, "x-callback-token": "t"},
        json=[{"identifier": ICCID, "identifierType": "ICCID"}],
    )
    assert accepted.status_code == 202
    drain(quiet, engine, clock)
    assert patch(api, headers, {}).headers["ETag"] != etag
    assert patch(api, headers, {"CostCenter": "x"}, **{"If-Match": etag}).status_code == 412


def test_two_updates_with_the_same_if_match_race_one_wins(
    live_server: str, engine: Engine, seeded: None
) -> None:
    with httpx.Client(base_url=live_server) as http:
        token = http.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        ).json()["access_token"]
    headers = {
        "Authorization": f"Bearer {token}",
        "x-api-key": API_KEY,
        "Content-Type": MERGE_PATCH,
        "If-Match": '"1"',
    }
    statuses: list[int] = []
    start = threading.Barrier(2)

    def update(n: int) -> None:
        with httpx.Client(base_url=live_server, timeout=30) as http:
            start.wait()
            answer = http.patch(
                f"{M2M}/simcards/{ICCID}", headers=headers, json={"CostCenter": f"racer-{n}"}
            )
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=update, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 412]
    assert stored(engine)[0] == 2
    assert len(audit_rows(engine)) == 1


def test_another_accounts_sim_is_not_found(
    api: TestClient, engine: Engine, tenant: Tenant, clock: ManualClock
) -> None:
    add_sim(engine, clock, tenant.account_id, "32490000002")
    theirs = "8932019999490000002"
    answer = patch(api, auth(api), {"CostCenter": "mine"}, iccid=theirs)
    assert answer.status_code == 404
    unknown = patch(api, auth(api), {"CostCenter": "mine"}, iccid="8932000000000000000")
    assert answer.json()["error"] == unknown.json()["error"] == "not_found"
    assert stored(engine, theirs)[0] == 1
    # And the other way round: the tenant cannot touch the sandbox's SIM.
    token = access_token(api, tenant.client_id, tenant.client_secret)
    mine = patch(api, {"Authorization": f"Bearer {token}", "x-api-key": tenant.api_key}, {})
    assert mine.status_code == 404


def test_credentials_come_before_the_body(api: TestClient) -> None:
    answer = patch(api, {"x-api-key": API_KEY}, b"{not json")
    assert answer.status_code == 401
    answer = patch(api, {"Authorization": "Bearer nope", "x-api-key": API_KEY}, {"State": "x"})
    assert answer.status_code == 401
