"""The SIM page's reading of a profile: every documented part, and missing parts read as empty."""

from __future__ import annotations

from m2m.console.sim_profile import Feature, ServiceArea, profile_view
from m2m.profile import sim_card_document
from m2m.sandbox import demo_profile


def test_a_full_profile_reads_part_by_part() -> None:
    document = sim_card_document(demo_profile(1), "Fleet 7", "Active", "206010000000001")
    view = profile_view(document, {"site": "ghent", "batch": ""})

    data, sms, voice = view.services
    assert (data.name, data.plan_code, data.plan_description, data.service_type) == (
        "Data",
        "M2M-DATA-1GB",
        "M2M Data 1 GB/month",
        "Data",
    )
    assert data.service_areas == [
        ServiceArea("BE", "Belgium"),
        ServiceArea("EU", "European Union roaming"),
    ]
    assert data.features == [
        Feature("LTE-M", True),
        Feature("NB-IOT", False),
        Feature("ROAMING", True),
    ]
    assert (data.daily_threshold, data.monthly_threshold) == (1_000, 30_000)
    # SMS and Voice have a plan code and feature codes, without a description or a flag.
    assert (sms.plan_code, sms.plan_description, sms.service_type) == ("M2M-SMS-50", None, None)
    assert sms.features == [Feature("MO-SMS", None), Feature("MT-SMS", None)]
    assert (voice.daily_threshold, voice.monthly_threshold) == (0, 0)
    assert [(p.code, p.static_ip) for p in view.access_points] == [
        ("m2m.sandbox.example", "10.64.0.2")
    ]
    assert view.custom_fields[0] == ("Custom Field 1", "Vending machines")
    assert [name for name, _ in view.custom_fields] == [f"Custom Field {n}" for n in range(1, 8)]
    assert view.labels == [("batch", ""), ("site", "ghent")]  # sorted by key


def test_missing_or_mistyped_parts_read_as_empty_rather_than_failing() -> None:
    document = sim_card_document(
        {
            "DataService": {
                "Plan": "not an object",
                "Features": [{"Code": "X"}],
                "DailyTreshold": True,
            }
        },
        None,
        "Ready",
        "206010000000002",
    )
    view = profile_view(document, {})

    data, sms, voice = view.services
    assert data.plan_code == ""
    assert data.features == [Feature("X", False)]
    assert data.daily_threshold is None  # a boolean is not a threshold
    assert sms.service_areas == []
    assert voice.features == []
    assert view.access_points == []
    assert all(value == "" for _, value in view.custom_fields)
    assert view.labels == []
