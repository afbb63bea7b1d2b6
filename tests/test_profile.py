"""The SIM profile (m2m.profile): stored whole, and a listed SIM's answer spliced from the
stored texts equal to the documented profile plus which SIM it is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from m2m.profile import (
    CUSTOM_FIELD_NAMES,
    ListedSimCard,
    listed_sim_json,
    sim_card_document,
    stored_profile,
)

PROFILE: dict[str, Any] = {
    "AccessPoints": [{"Code": "iot.apn", "Properties": {"StaticIP": "10.0.0.1"}}],
    "CustomFields": {"Custom Field 3": 'dépôt "B"', "Custom Field 1": "asset 42"},
    "DataService": {"Plan": {"Code": "IOT-1GB"}, "DailyTreshold": 10},
    "SMSService": {"PlanCode": "S"},
    "VoiceService": {},
}
LABELS = {"site": "gent", "tier": "gold ★"}


def listed(profile_json: str, cost_center: str | None = 'fleet "east" ★') -> Any:
    text = listed_sim_json(
        profile_json,
        cost_center,
        "Active",
        "206012000000001",
        iccid="8932018000000000001",
        msisdn="32470000001",
        labels_json=json.dumps(LABELS),
    )
    return json.loads(text)


def expected(cost_center: str | None = 'fleet "east" ★') -> dict[str, Any]:
    documented = sim_card_document(PROFILE, cost_center, "Active", "206012000000001")
    return {
        **documented,
        "ICCID": "8932018000000000001",
        "MSISDN": "32470000001",
        "Labels": LABELS,
    }


def test_a_stored_profile_has_the_five_keys_in_order_and_all_seven_custom_fields() -> None:
    stored = stored_profile({**PROFILE, "State": "Active"})  # an unknown key is dropped
    assert list(stored) == [
        "AccessPoints",
        "CustomFields",
        "DataService",
        "SMSService",
        "VoiceService",
    ]
    assert list(stored["CustomFields"]) == list(CUSTOM_FIELD_NAMES)
    assert stored["CustomFields"]["Custom Field 2"] == ""
    assert stored["CustomFields"]["Custom Field 3"] == 'dépôt "B"'
    assert stored_profile({})["AccessPoints"] == []


@pytest.mark.parametrize(
    "serialise",
    [
        json.dumps,  # SQLAlchemy's JSON type: spaces, \u escapes
        lambda d: json.dumps(d, separators=(",", ":"), ensure_ascii=False),  # pydantic's form
    ],
)
@pytest.mark.parametrize("cost_center", ['fleet "east" ★', None, ""])
def test_the_spliced_answer_is_the_documented_profile_then_which_sim(
    serialise: Any, cost_center: str | None
) -> None:
    answer = listed(serialise(stored_profile(PROFILE)), cost_center)
    assert answer == expected(cost_center)
    assert list(answer) == list(expected(cost_center))  # the documented order, then the extras
    assert list(answer["CustomFields"]) == list(CUSTOM_FIELD_NAMES)
    ListedSimCard.model_validate(answer)  # what the OpenAPI document says it is


@pytest.mark.parametrize(
    "odd",
    [
        {},  # a row written without a profile
        {"CustomFields": {"Custom Field 2": "x"}, "AccessPoints": []},  # another key order
        {"VoiceService": {}, **PROFILE},
    ],
)
def test_a_profile_not_stored_whole_is_still_answered_whole(odd: dict[str, Any]) -> None:
    answer = listed(json.dumps(odd))
    assert answer == {**expected(), **stored_profile(odd)}
    assert list(answer) == list(expected())
