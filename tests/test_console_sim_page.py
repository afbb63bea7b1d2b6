"""One SIM's page in the console (SQLite and PostgreSQL): the profile laid out for people, every
text escaped; and its edit form (what the API's PATCH may change), checked, audited and kept to
the account's own SIMs."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from m2m.clock import ManualClock
from m2m.storage.accounts import find_sandbox_account
from m2m.storage.tables import sim_cards
from tests.support.console import sign_in
from tests.support.sims import add_sim, label_sim

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
    label_sim(engine, "32470000001", {"site": "ghent", "fleet/region": "north"})
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
    assert "m2m.sandbox.example 10.64.0.2 device00001 Vending machines APN" in section(
        page, "access-points"
    )
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
    label_sim(engine, "32499000061", {"k": HOSTILE})
    page = console.get(f"/console/sims/{sim_id(engine, '32499000061')}").text
    assert "<script>alert" not in page
    # Each part shows the text, escaped.
    for part in ("labels", "custom-fields", "service-data", "service-sms", "access-points"):
        found = re.search(rf'<section[^>]* id="{part}"[^>]*>(.*?)</section>', page, re.S)
        assert found, part
        assert ESCAPED in found.group(1), part
