"""GET /m2m/1.0.0/simcards as a list and search (issue 13), on both databases: every filter,
paging through everything, cursors while rows change, delta sync, bad input, tenant isolation,
and the documented ?msisdn= answer left as it was."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from m2m.asgi import create_app
from m2m.clock import ManualClock
from m2m.settings import Settings
from tests.support.api import M2M, get_sim, request
from tests.support.sims import FIRST_BULK_MSISDN, add_active_sims, change_sim, set_labels
from tests.support.tenants import Tenant
from tests.support.worker import drain

SIMCARDS = f"{M2M}/simcards"


def headers_of(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.permanent_token}", "x-api-key": tenant.api_key}


def number(n: int) -> str:
    return str(FIRST_BULK_MSISDN + n)


def listing(
    client: TestClient, tenant: Tenant, params: list[tuple[str, str]] | dict[str, str]
) -> httpx.Response:
    return client.get(SIMCARDS, params=params, headers=headers_of(tenant))


def next_link(response: httpx.Response) -> str | None:
    link = response.headers.get("link")
    if link is None:
        return None
    url, rel = link.split(";", 1)
    assert rel.strip() == 'rel="next"'
    assert url.startswith("<http")
    assert url.endswith(">")
    return url[1:-1]


def walk(
    client: TestClient, tenant: Tenant, params: list[tuple[str, str]]
) -> list[list[dict[str, Any]]]:
    """Every page of a list, following the Link header."""
    pages = []
    response = listing(client, tenant, params)
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        url = next_link(response)
        if url is None:
            return pages
        response = client.get(url, headers=headers_of(tenant))


def msisdns(pages: list[list[dict[str, Any]]]) -> list[str]:
    return [sim["MSISDN"] for page in pages for sim in page]


@pytest.fixture
def fleet(engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant) -> None:
    """Tenant A: SIMs 0..29, Active; some Ready/Terminated, cost centers, labels, custom fields
    and plans. Tenant B: SIMs 100..109 with the same labels and values."""
    now = clock.now()
    add_active_sims(engine, 30, now, account_id=tenant.account_id)
    add_active_sims(engine, 10, now, account_id=other_tenant.account_id, first=100)
    for n in range(0, 30, 3):
        change_sim(engine, number(n), now, state="Ready")
    change_sim(engine, number(29), now, state="Terminated")
    for n in range(0, 30, 2):
        change_sim(engine, number(n), now, cost_center="fleet-east")
    for n in range(0, 30, 5):
        profile = {
            "CustomFields": {"Custom Field 3": "depot"},
            "DataService": {"Plan": {"Code": "IOT-1GB"}},
        }
        change_sim(engine, number(n), now, profile=profile)
    for n in range(10):
        set_labels(engine, number(n), {"site": "ghent" if n < 6 else "bruges", "tier": "gold"})
    for n in range(100, 110):
        change_sim(engine, number(n), now, cost_center="fleet-east")
        set_labels(engine, number(n), {"site": "ghent", "tier": "gold"})


def expected(*ns: int) -> list[str]:
    return [number(n) for n in sorted(ns)]


@pytest.mark.usefixtures("fleet")
@pytest.mark.parametrize(
    ("params", "wanted"),
    [
        ([], range(30)),
        ([("state", "Ready")], range(0, 30, 3)),
        ([("state", "Ready"), ("state", "Terminated")], [*range(0, 30, 3), 29]),
        ([("state", "Ready,Terminated")], [*range(0, 30, 3), 29]),
        ([("cost_center", "fleet-east")], range(0, 30, 2)),
        ([("cost_center", "")], range(1, 30, 2)),
        ([("label", "site=ghent")], range(6)),
        ([("label", "site")], range(10)),
        ([("label", "site=bruges"), ("label", "tier=gold")], range(6, 10)),
        ([("label", "site=ghent"), ("label", "tier=silver")], []),
        ([("label", "site=ghent"), ("state", "Active")], [1, 2, 4, 5]),
        ([("label", "site"), ("cost_center", "fleet-east"), ("state", "Active")], [2, 4, 8]),
        ([("custom_field_3", "depot")], range(0, 30, 5)),
        ([("custom_field_3", "depot"), ("state", "Ready")], [0, 15]),
        ([("custom_field_1", "")], range(30)),
        ([("plan", "IOT-1GB")], range(0, 30, 5)),
        ([("msisdn_prefix", number(2)[:-1])], range(10)),
        ([("msisdn_prefix", number(25))], [25]),
        ([("iccid_prefix", "89320180000000001")], range(10, 20)),
        ([("imsi_prefix", "20601200000002")], range(20, 30)),
        ([("msisdn", number(3)), ("state", "Ready")], [3]),
        ([("msisdn", number(3)), ("state", "Active")], []),
        ([("msisdn", number(4)), ("limit", "5")], [4]),
    ],
)
def test_filters(
    client: TestClient, tenant: Tenant, params: list[tuple[str, str]], wanted: list[int]
) -> None:
    response = listing(client, tenant, params)
    assert response.status_code == 200, response.text
    assert [sim["MSISDN"] for sim in response.json()] == expected(*wanted)
    assert "link" not in response.headers  # one page holds them all
    assert "x-total-count" not in response.headers  # only when asked


@pytest.mark.usefixtures("fleet")
def test_listed_profile_is_the_documented_one_and_says_which_sim(
    client: TestClient, tenant: Tenant
) -> None:
    listed = listing(client, tenant, {"msisdn_prefix": number(5)}).json()[0]
    documented = get_sim(client, number(5), tenant.permanent_token, tenant.api_key).json()[0]
    assert "ICCID" not in documented
    assert "MSISDN" not in documented
    assert list(listed) == [*documented, "ICCID", "MSISDN", "Labels"]
    assert {k: v for k, v in listed.items() if k in documented} == documented
    assert listed["MSISDN"] == number(5)
    assert listed["ICCID"].startswith("893201")
    assert listed["CustomFields"]["Custom Field 3"] == "depot"


@pytest.mark.usefixtures("fleet")
@pytest.mark.parametrize("identifier", ["ICCID", "IMSI"])
def test_read_one_by_iccid_or_imsi(client: TestClient, tenant: Tenant, identifier: str) -> None:
    listed = listing(client, tenant, {"msisdn_prefix": number(7)}).json()[0]
    value = listed[identifier] if identifier == "ICCID" else listed["Device"]["Identifier"]
    response = listing(client, tenant, {identifier.lower(): value})
    assert response.status_code == 200
    assert response.json() == [listed]
    assert "link" not in response.headers


@pytest.mark.usefixtures("fleet")
def test_tenant_isolation(client: TestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = listing(client, other_tenant, {"msisdn_prefix": number(100)}).json()[0]
    # No filter of A's finds B's SIMs, even with B's labels, cost center and identifiers.
    for params in (
        {},
        {"label": "site=ghent"},
        {"cost_center": "fleet-east"},
        {"msisdn_prefix": number(100)},
        {"iccid_prefix": theirs["ICCID"]},
        {"imsi_prefix": theirs["Device"]["Identifier"]},
        {"updated_since": "2000-01-01T00:00:00Z"},
    ):
        found = msisdns(walk(client, tenant, list(params.items())))
        assert not set(found) & {number(n) for n in range(100, 110)}, params
    for name, value in (("iccid", theirs["ICCID"]), ("imsi", theirs["Device"]["Identifier"])):
        foreign = listing(client, tenant, {name: value})
        missing = listing(client, tenant, {name: value[:-3] + "999"})
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json()["error"] == missing.json()["error"] == "not_found"
        assert name.upper() in foreign.json()["error_description"]
    counted = listing(client, tenant, {"label": "site=ghent", "count": "true"})
    assert counted.headers["x-total-count"] == "6"


@pytest.mark.usefixtures("fleet")
@pytest.mark.parametrize(
    "params",
    [
        [],
        [("state", "Active")],
        [("cost_center", "fleet-east")],
        [("label", "tier=gold")],
        # Paged by the first label's index (the SIM's id), the second probed for each SIM.
        [("label", "site"), ("label", "tier=gold"), ("state", "Active")],
    ],
)
@pytest.mark.parametrize("limit", ["1", "4", "7"])
def test_paging_through_everything(
    client: TestClient, tenant: Tenant, params: list[tuple[str, str]], limit: str
) -> None:
    whole = listing(client, tenant, [*params, ("limit", "1000"), ("count", "true")])
    pages = walk(client, tenant, [*params, ("limit", limit)])
    assert msisdns(pages) == [sim["MSISDN"] for sim in whole.json()]  # none twice, none missed
    assert all(len(page) == int(limit) for page in pages[:-1])
    assert int(whole.headers["x-total-count"]) == len(whole.json())


@pytest.mark.usefixtures("fleet")
def test_the_next_link_keeps_the_filters(client: TestClient, tenant: Tenant) -> None:
    response = listing(client, tenant, [("state", "Ready"), ("state", "Active"), ("limit", "2")])
    url = next_link(response)
    assert url is not None
    query = parse_qsl(urlsplit(url).query)
    assert [p for p in query if p[0] != "cursor"] == [
        ("state", "Ready"),
        ("state", "Active"),
        ("limit", "2"),
    ]
    assert urlsplit(url).path == SIMCARDS


@pytest.mark.usefixtures("fleet")
def test_cursor_is_stable_while_rows_change(
    engine: Engine, clock: ManualClock, client: TestClient, tenant: Tenant
) -> None:
    first = listing(client, tenant, {"state": "Active", "limit": "5"})
    seen = [sim["MSISDN"] for sim in first.json()]
    # Between pages: a SIM already seen and one not yet seen leave the filter, a new SIM comes.
    change_sim(engine, seen[0], clock.now(), state="Deactivated")
    change_sim(engine, number(28), clock.now(), state="Deactivated")
    (added,) = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id, first=50)
    url = next_link(first)
    assert url is not None
    rest = walk(client, tenant, list(parse_qsl(urlsplit(url).query)))
    later = msisdns(rest)
    assert not set(seen) & set(later)  # nothing twice
    active_now = {n for n in expected(*range(30)) if n not in (seen[0], number(28))}
    untouched = active_now - {number(n) for n in range(0, 30, 3)} - {number(29)}
    assert untouched - set(seen) <= set(later)  # nothing that stayed missed
    assert number(28) not in later
    assert added in later  # a new SIM past the cursor shows up
    assert later == sorted(later)


def test_delta_sync_picks_up_a_lifecycle_change(
    engine: Engine,
    clock: ManualClock,
    quiet: Settings,
    tenant: Tenant,
) -> None:
    add_active_sims(engine, 5, clock.now(), account_id=tenant.account_id)
    with TestClient(create_app(quiet, engine=engine, clock=clock)) as client:
        clock.advance(60)
        start = clock.now()
        assert listing(client, tenant, {"updated_since": start.isoformat()}).json() == []
        # Deactivate SIM 3 through the API and let a worker carry it out.
        device = {"identifier": number(3), "identifierType": "MSISDN"}
        assert request(client, headers_of(tenant), "deactivation", [device]).status_code == 202
        drain(quiet, engine, clock)
        changed = listing(client, tenant, {"updated_since": start.isoformat()})
        assert [(s["MSISDN"], s["State"]) for s in changed.json()] == [(number(3), "Deactivated")]
        # Resuming from the last page's position: a later change comes after it, in order.
        clock.advance(60)
        change_sim(engine, number(1), clock.now(), cost_center="moved")
        since = start.isoformat().replace("+00:00", "Z")
        pages = walk(client, tenant, [("updated_since", since), ("limit", "1")])
        assert msisdns(pages) == [number(3), number(1)]


@pytest.mark.usefixtures("fleet")
@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ([("stat", "Active")], "stat"),
        ([("state", "Active"), ("lable", "x")], "lable"),
        ([("state", "active")], "state"),
        ([("state", "")], "state"),
        ([("label", "=x")], "label"),
        ([("label", "a b=c")], "label"),
        ([("label", f"k{n}") for n in range(9)], "label"),
        ([("limit", "0")], "limit"),
        ([("limit", "1001")], "limit"),
        ([("limit", "ten")], "limit"),
        ([("limit", "5"), ("limit", "6")], "limit"),
        ([("count", "yes")], "count"),
        ([("updated_since", "yesterday")], "updated_since"),
        ([("updated_since", "2026-01-01T00:00:00")], "updated_since"),
        ([("msisdn_prefix", "32a")], "msisdn_prefix"),
        ([("iccid_prefix", "")], "iccid_prefix"),
        ([("cost_center", "x" * 201)], "cost_center"),
        ([("custom_field_8", "x")], "custom_field_8"),
        ([("iccid", "123")], "iccid"),
        ([("imsi", "2060100000000001")], "imsi"),
        ([("iccid", "8932018000000000000"), ("iccid", "8932018000000000001")], "iccid"),
        ([("msisdn", "32480000001"), ("limit", "5"), ("msisdn", "1")], "msisdn"),
        ([("msisdn", "abc"), ("limit", "5")], "msisdn"),
        ([("cursor", "not-a-cursor")], "cursor"),
        (
            [("cursor", base64.urlsafe_b64encode(b'{"o":"id","k":["x"],"f":"0"}').decode())],
            "cursor",
        ),
    ],
)
def test_bad_input_is_a_422_naming_the_parameter(
    client: TestClient, tenant: Tenant, params: list[tuple[str, str]], parameter: str
) -> None:
    response = listing(client, tenant, params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["details"][0]["field"] == f"query.{parameter}"


@pytest.mark.usefixtures("fleet")
def test_a_cursor_only_resumes_its_own_filters(client: TestClient, tenant: Tenant) -> None:
    first = listing(client, tenant, {"state": "Active", "limit": "2"})
    url = next_link(first)
    assert url is not None
    cursor = dict(parse_qsl(urlsplit(url).query))["cursor"]
    other = listing(client, tenant, {"state": "Ready", "cursor": cursor})
    assert other.status_code == 422
    assert other.json()["details"][0]["field"] == "query.cursor"
    resized = listing(client, tenant, {"state": "Active", "cursor": cursor, "limit": "50"})
    assert resized.status_code == 200  # the page size may change between pages
    delta = listing(
        client, tenant, {"state": "Active", "cursor": cursor, "updated_since": "2000-01-01T00:00Z"}
    )
    assert delta.status_code == 422
    decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert decoded["o"] == "id"


@pytest.mark.usefixtures("fleet")
def test_credentials_come_before_the_query(client: TestClient, tenant: Tenant) -> None:
    for params in ({"stat": "x"}, {}, {"iccid": "1"}):
        response = client.get(SIMCARDS, params=params, headers={"x-api-key": tenant.api_key})
        assert response.status_code == 401, params


@pytest.mark.usefixtures("fleet")
def test_the_documented_msisdn_answer_is_unchanged(client: TestClient, tenant: Tenant) -> None:
    answer = get_sim(client, number(5), tenant.permanent_token, tenant.api_key)
    assert answer.status_code == 200
    assert list(answer.json()[0]) == [
        "AccessPoints",
        "CustomFields",
        "DataService",
        "SMSService",
        "VoiceService",
        "CostCenter",
        "State",
        "Device",
    ]
    assert "link" not in answer.headers
    foreign = get_sim(client, number(100), tenant.permanent_token, tenant.api_key)
    assert foreign.status_code == 404
