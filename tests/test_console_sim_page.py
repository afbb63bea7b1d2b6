"""One SIM's page in the console (SQLite and PostgreSQL): the profile laid out for people, every
text escaped; and its edit form (what the API's PATCH may change), checked, audited and kept to
the account's own SIMs."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from m2m.clock import ManualClock
from m2m.profile import MAX_THRESHOLD
from m2m.sandbox import DEMO_EMAIL
from m2m.settings import Settings
from m2m.storage.accounts import find_sandbox_account
from m2m.storage.tables import audit_events, sim_cards, sim_labels
from tests.support.api import auth
from tests.support.console import add_user, console_client, sign_in
from tests.support.events import of_type, stored_events
from tests.support.sims import add_sim, set_labels
from tests.support.tenants import Tenant

HOSTILE = '<script>alert("x")</script>'
ESCAPED = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"


@pytest.fixture
def csrf(console: TestClient, engine: Engine, clock: ManualClock) -> str:
    return sign_in(console, engine, clock)


def sim_id(engine: Engine, msisdn: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(sim_cards.c.id).where(sim_cards.c.msisdn == msisdn)).scalar_one()
        )


def sandbox_account_id(engine: Engine) -> int:
    with engine.connect() as conn:
        account = find_sandbox_account(conn)
    assert account
    return account.id


def section(page: str, section_id: str) -> str:
    """The text of the page's ``<section id=…>``, tags dropped, blanks collapsed."""
    found = re.search(rf'<section[^>]* id="{section_id}"[^>]*>(.*?)</section>', page, re.S)
    assert found, section_id
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


@pytest.mark.usefixtures("csrf")
def test_the_sim_page_reads_the_profile_part_by_part(console: TestClient, engine: Engine) -> None:
    set_labels(engine, "32470000001", {"site": "ghent", "fleet/region": "north"})
    page = console.get(f"/console/sims/{sim_id(engine, '32470000001')}").text

    assert section(page, "labels").startswith("Labels fleet/region north site ghent")
    fields = section(page, "custom-fields")
    assert (
        "Custom Field 1 Vending machines Custom Field 2 Site 2 Custom Field 3 Asset 00001" in fields
    )
    assert "Custom Field 7 —" in fields  # all seven, unset ones too
    data = section(page, "service-data")
    assert "Plan M2M-DATA-1GB Description M2M Data 1 GB/month Service type Data" in data
    assert "Daily threshold 1,000 Monthly threshold 30,000" in data
    assert "BE · Belgium" in data
    assert "EU · European Union roaming" in data
    assert "LTE-M enabled NB-IOT disabled ROAMING enabled" in data
    sms = section(page, "service-sms")
    assert "Plan M2M-SMS-50 Daily threshold 10 Monthly threshold 50" in sms
    assert "Features MO-SMS MT-SMS" in sms
    voice = section(page, "service-voice")
    assert "Plan M2M-VOICE-NONE Daily threshold 0 Monthly threshold 0" in voice
    assert "VOICE-BARRED" in voice
    points = section(page, "access-points")
    assert "APN m2m.sandbox.example Static IP 10.64.0.2 User name device00001" in points
    assert "Name Vending machines APN" in points
    assert "the operator's documentation gives them no unit" in page
    # What the page showed before stays: identity, actions, history, the API's document.
    assert "Deactivation" in page
    assert "State history" in page
    assert '"DailyTreshold": 1000' in page


@pytest.mark.usefixtures("csrf")
def test_a_sim_without_labels_or_services_says_so(
    console: TestClient, engine: Engine, clock: ManualClock
) -> None:
    add_sim(engine, clock, sandbox_account_id(engine), "32499000060")
    page = console.get(f"/console/sims/{sim_id(engine, '32499000060')}").text
    assert "No labels." in section(page, "labels")
    assert "No access point." in section(page, "access-points")
    assert "Daily threshold not set" in section(page, "service-data")


@pytest.mark.usefixtures("csrf")
def test_every_text_of_the_profile_is_escaped(
    console: TestClient, engine: Engine, clock: ManualClock
) -> None:
    profile = {
        "AccessPoints": [{"Code": HOSTILE, "Properties": {"CustomName": HOSTILE}}],
        "CustomFields": {"Custom Field 4": HOSTILE},
        "DataService": {
            "Plan": {"Code": HOSTILE, "Description": HOSTILE, "ServiceType": HOSTILE},
            "ServiceAreas": [{"Code": HOSTILE, "Description": HOSTILE}],
            "Features": [{"Code": HOSTILE, "Enabled": True}],
        },
        "SMSService": {"PlanCode": HOSTILE, "FeatureCodes": [HOSTILE]},
    }
    add_sim(engine, clock, sandbox_account_id(engine), "32499000061", profile)
    set_labels(engine, "32499000061", {"k": HOSTILE})
    page = console.get(f"/console/sims/{sim_id(engine, '32499000061')}").text
    assert "<script>alert" not in page
    # Each part shows the text, escaped.
    for part in ("labels", "custom-fields", "service-data", "service-sms", "access-points"):
        found = re.search(rf'<section[^>]* id="{part}"[^>]*>(.*?)</section>', page, re.S)
        assert found, part
        assert ESCAPED in found.group(1), part
    # The edit form shows the same texts in its inputs, escaped in their attributes.
    form = console.get(f"/console/sims/{sim_id(engine, '32499000061')}/edit").text
    assert "<script>alert" not in form
    assert f'name="custom_field_4" value="{ESCAPED}"' in form
    assert f'name="label_value" value="{ESCAPED}"' in form


# --- the edit form ------------------------------------------------------------------------------


class _Inputs(HTMLParser):
    """The fields a browser would send from the page's edit form (unticked boxes left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self._in_form = (found.get("action") or "").endswith("/edit")
        elif tag == "input" and self._in_form and found.get("name"):
            if found.get("type") == "checkbox" and "checked" not in found:
                return
            self.fields.append((found["name"] or "", found.get("value") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def edit_fields(page: str) -> list[tuple[str, str]]:
    parser = _Inputs()
    parser.feed(page)
    assert parser.fields, "the page has no edit form"
    return parser.fields


def changed(fields: list[tuple[str, str]], **values: str) -> list[tuple[str, str]]:
    return [(name, values.get(name, value)) for name, value in fields]


def with_labels(fields: list[tuple[str, str]], *rows: tuple[str, str]) -> list[tuple[str, str]]:
    """The form with its label rows replaced by ``rows``."""
    kept = [(n, v) for n, v in fields if n not in ("label_key", "label_value", "label_remove")]
    for key, value in rows:
        kept += [("label_key", key), ("label_value", value)]
    return kept


def submit(
    console: TestClient, sim: int, fields: list[tuple[str, str]], request_id: str = "edit-1"
) -> httpx.Response:
    # Pairs in order, as a browser sends repeated names (label rows pair up by position).
    return console.post(
        f"/console/sims/{sim}/edit",
        content=urlencode(fields),
        headers={"content-type": "application/x-www-form-urlencoded", "X-Request-ID": request_id},
        follow_redirects=False,
    )


def stored(engine: Engine, msisdn: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            select(
                sim_cards.c.id,
                sim_cards.c.iccid,
                sim_cards.c.cost_center,
                sim_cards.c.profile,
                sim_cards.c.labels,
                sim_cards.c.version,
            ).where(sim_cards.c.msisdn == msisdn)
        ).one()
        pairs = conn.execute(
            select(sim_labels.c.key, sim_labels.c.value).where(sim_labels.c.sim_id == row.id)
        )
        return {**row._mapping, "label_rows": dict(pairs.all())}


def audit_of(engine: Engine) -> list[dict[str, Any]]:
    """The audit trail's SIM updates (making the accounts and credentials the tests use is
    recorded too, as every admin change is)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_events)
            .where(audit_events.c.action == "sim.updated")
            .order_by(audit_events.c.id)
        )
        return [dict(r._mapping) for r in rows]


@pytest.mark.usefixtures("csrf")
def test_the_edit_form_saves_what_the_api_may_change_and_audits_the_console_user(
    console: TestClient, engine: Engine
) -> None:
    sim = sim_id(engine, "32470000001")
    set_labels(engine, "32470000001", {"site": "ghent", "old": "x"})
    before = stored(engine, "32470000001")
    form = console.get(f"/console/sims/{sim}/edit")
    assert form.status_code == 200
    assert 'name="data_daily_threshold" value="1000"' in form.text
    assert 'name="custom_field_1" value="Vending machines"' in form.text

    fields = changed(
        edit_fields(form.text),
        cost_center="Fleet 7",
        custom_field_4="Gate 3",
        data_daily_threshold="1500",
        voice_monthly_threshold="60",
    )
    fields = with_labels(fields, ("old", "x"), ("site", "antwerp"), ("batch", "2026-11"))
    fields.append(("label_remove", "0"))  # the first row: old
    response = submit(console, sim, fields)

    assert response.status_code == 303
    assert response.headers["location"] == f"/console/sims/{sim}?edit=saved"
    after = stored(engine, "32470000001")
    assert after["cost_center"] == "Fleet 7"
    assert after["profile"]["CustomFields"]["Custom Field 4"] == "Gate 3"
    assert after["profile"]["DataService"]["DailyTreshold"] == 1500
    assert after["profile"]["VoiceService"]["MonthlyTreshold"] == 60
    assert after["profile"]["DataService"]["Plan"] == before["profile"]["DataService"]["Plan"]
    assert after["labels"] == after["label_rows"] == {"site": "antwerp", "batch": "2026-11"}
    assert after["version"] == before["version"] + 1

    (entry,) = audit_of(engine)
    assert (entry["actor_kind"], entry["actor"]) == ("console", DEMO_EMAIL)
    assert (entry["action"], entry["subject_kind"]) == ("sim.updated", "sim")
    assert entry["request_id"] == "edit-1"
    assert entry["changes"]["CostCenter"] == {"before": before["cost_center"], "after": "Fleet 7"}
    assert entry["changes"]["DataService.DailyTreshold"] == {"before": 1000, "after": 1500}
    assert entry["changes"]["Labels.old"] == {"before": "x", "after": None}
    assert entry["changes"]["Labels.site"] == {"before": "ghent", "after": "antwerp"}

    # One sim.updated, with the audit entry's changes and the SIM as it is after the edit.
    (event,) = of_type(stored_events(engine), "sim.updated")
    assert event["data"]["changes"] == entry["changes"]
    assert event["data"]["fields"] == sorted(entry["changes"])
    assert event["sim"]["labels"] == {"site": "antwerp", "batch": "2026-11"}
    assert event["sim_id"] == sim

    page = console.get(response.headers["location"]).text
    assert "Saved." in page
    assert "batch 2026-11 site antwerp" in section(page, "labels")
    assert "Daily threshold 1,500" in section(page, "service-data")
    assert "Fleet 7" in page


@pytest.mark.usefixtures("csrf")
def test_a_form_without_changes_saves_nothing(console: TestClient, engine: Engine) -> None:
    sim = sim_id(engine, "32470000001")
    before = stored(engine, "32470000001")
    response = submit(console, sim, edit_fields(console.get(f"/console/sims/{sim}/edit").text))
    assert response.headers["location"] == f"/console/sims/{sim}?edit=unchanged"
    assert stored(engine, "32470000001") == before
    assert audit_of(engine) == []
    assert stored_events(engine) == []
    assert "Nothing to save" in console.get(response.headers["location"]).text


def error_next_to(page: str, name: str) -> str:
    found = re.search(rf'<div class="field-errors" id="{name}-error">(.*?)</div>', page)
    assert found, f"no error next to {name}"
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split()))


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("cost_center", "x" * 201, "CostCenter is longer than 200 characters"),
        ("custom_field_3", "a\x07b", "contains a control character"),
        ("data_daily_threshold", "lots", "Enter a whole number, 0 or more."),
        ("sms_monthly_threshold", "-1", "Enter a whole number, 0 or more."),
        ("voice_daily_threshold", str(MAX_THRESHOLD + 1), f"between 0 and {MAX_THRESHOLD}"),
    ],
)
@pytest.mark.usefixtures("csrf")
def test_each_invalid_field_is_refused_next_to_it(
    console: TestClient, engine: Engine, name: str, value: str, problem: str
) -> None:
    sim = sim_id(engine, "32470000001")
    before = stored(engine, "32470000001")
    typed = {"cost_center": "kept as typed", name: value}
    response = submit(
        console, sim, changed(edit_fields(console.get(f"/console/sims/{sim}/edit").text), **typed)
    )

    assert response.status_code == 422
    assert problem in error_next_to(response.text, name)
    assert f'id="{name}"' in response.text
    assert 'aria-invalid="true"' in response.text
    assert "Nothing was saved" in response.text
    if name != "cost_center":
        assert 'value="kept as typed"' in response.text  # what was typed is kept
    assert stored(engine, "32470000001") == before
    assert audit_of(engine) == []


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ([("bad key", "v")], "label key 'bad key' must be 1 to 64 letters"),
        ([("", "orphan")], "Give the value 'orphan' a key."),
        ([("a", "1"), ("a", "2")], "The key 'a' is there twice."),
        ([(f"k{n}", "v") for n in range(33)], "a SIM has at most 32 labels, not 33"),
        ([("k", "v" * 201)], "longer than 200 characters"),
    ],
)
@pytest.mark.usefixtures("csrf")
def test_invalid_labels_are_refused_next_to_the_labels(
    console: TestClient, engine: Engine, rows: list[tuple[str, str]], problem: str
) -> None:
    sim = sim_id(engine, "32470000001")
    before = stored(engine, "32470000001")
    fields = with_labels(edit_fields(console.get(f"/console/sims/{sim}/edit").text), *rows)
    response = submit(console, sim, fields)
    assert response.status_code == 422
    assert problem in error_next_to(response.text, "labels")
    assert stored(engine, "32470000001") == before


@pytest.mark.usefixtures("csrf")
def test_the_largest_valid_form_is_saved(console: TestClient, engine: Engine) -> None:
    """Every label, custom field and the cost center at their longest, in characters a browser
    sends as nine bytes each: not refused as too large."""
    sim = sim_id(engine, "32470000001")
    long = "€" * 200
    fields = edit_fields(console.get(f"/console/sims/{sim}/edit").text)
    fields = changed(fields, cost_center=long, **{f"custom_field_{n}": long for n in range(1, 8)})
    fields = with_labels(fields, *[(f"k/{n:02d}:" + "x" * 59, long) for n in range(32)])
    assert len(urlencode(fields)) > 64 * 1024
    response = submit(console, sim, fields)
    assert response.status_code == 303, response.text[:300]
    after = stored(engine, "32470000001")
    assert len(after["labels"]) == len(after["label_rows"]) == 32
    assert after["cost_center"] == long


@pytest.mark.usefixtures("csrf")
def test_a_form_from_before_another_change_is_not_saved_over_it(
    console: TestClient, engine: Engine
) -> None:
    """Opened, then the SIM changed (here: by a first send of the same form), then sent again:
    refused and shown as it now is."""
    sim = sim_id(engine, "32470000001")
    fields = edit_fields(console.get(f"/console/sims/{sim}/edit").text)
    first = submit(console, sim, changed(fields, cost_center="First"))
    assert first.status_code == 303
    second = submit(console, sim, changed(fields, cost_center="Second"))
    assert second.status_code == 409
    assert "changed since the form was opened" in second.text
    assert 'name="cost_center" value="First"' in second.text
    assert stored(engine, "32470000001")["cost_center"] == "First"
    assert len(audit_of(engine)) == 1


@pytest.mark.usefixtures("csrf")
def test_a_form_opened_before_an_api_update_does_not_undo_it(
    console: TestClient, engine: Engine
) -> None:
    sim = sim_id(engine, "32470000001")
    fields = edit_fields(console.get(f"/console/sims/{sim}/edit").text)
    iccid = str(stored(engine, "32470000001")["iccid"])
    patched = console.patch(
        f"/m2m/1.0.0/simcards/{iccid}",
        json={"Labels": {"site": "api"}},
        headers={**auth(console), "content-type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200
    response = submit(console, sim, with_labels(fields, ("site", "console")))
    assert response.status_code == 409
    assert 'value="api"' in response.text
    assert stored(engine, "32470000001")["labels"] == {"site": "api"}


@pytest.mark.usefixtures("csrf")
def test_an_edit_without_the_forms_csrf_token_is_refused(
    console: TestClient, engine: Engine
) -> None:
    sim = sim_id(engine, "32470000001")
    before = stored(engine, "32470000001")
    fields = changed(edit_fields(console.get(f"/console/sims/{sim}/edit").text), cost_center="X")
    for forged in (
        [(n, v) for n, v in fields if n != "csrf_token"],
        changed(fields, csrf_token="forged"),
    ):
        response = submit(console, sim, forged)
        assert response.status_code == 403
        assert "did not come from the console" in response.text
    assert stored(engine, "32470000001") == before


def test_another_accounts_sim_cannot_be_opened_or_edited(
    console: TestClient,
    csrf: str,
    engine: Engine,
    clock: ManualClock,
    other_tenant: Tenant,
    settings: Settings,
) -> None:
    add_sim(engine, clock, other_tenant.account_id, "32499000070")
    foreign = sim_id(engine, "32499000070")
    own_form = edit_fields(console.get(f"/console/sims/{sim_id(engine, '32470000001')}/edit").text)
    before = stored(engine, "32499000070")

    assert console.get(f"/console/sims/{foreign}/edit").status_code == 404
    response = submit(console, foreign, changed(own_form, cost_center="Mine now"))
    assert response.status_code == 404
    assert stored(engine, "32499000070") == before
    assert audit_of(engine) == []

    # Its own account's user may.
    add_user(engine, clock, other_tenant.account_id, "b@example.com")
    with console_client(settings, engine, clock) as other:
        sign_in(other, engine, clock, "b@example.com")
        fields = edit_fields(other.get(f"/console/sims/{foreign}/edit").text)
        assert submit(other, foreign, changed(fields, cost_center="Ours")).status_code == 303
    assert stored(engine, "32499000070")["cost_center"] == "Ours"
    (entry,) = audit_of(engine)
    assert (entry["account_id"], entry["actor"]) == (other_tenant.account_id, "b@example.com")


def test_a_suspended_account_cannot_edit(console: TestClient, csrf: str, engine: Engine) -> None:
    from m2m import accounts
    from m2m.audit import ADMIN_CLI
    from m2m.clock import SystemClock

    sim = sim_id(engine, "32470000001")
    fields = edit_fields(console.get(f"/console/sims/{sim}/edit").text)
    accounts.set_subscription(
        engine, SystemClock(), sandbox_account_id(engine), active=False, actor=ADMIN_CLI
    )
    response = submit(console, sim, changed(fields, cost_center="X"))
    assert response.status_code == 403
    assert "subscription is suspended" in response.text
