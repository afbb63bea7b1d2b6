"""Editing a SIM (m2m.sim_edit): RFC 7396 merge patches of the editable fields, checked."""

from __future__ import annotations

from typing import Any

import pytest

from m2m.labels import MAX_LABELS
from m2m.profile import MAX_THRESHOLD, stored_profile
from m2m.sim_edit import (
    EditableSim,
    apply_edit,
    changed_fields,
    editable_document,
    merge_patch,
)

# As every writer stores a profile (``stored_profile``): all seven custom fields.
PROFILE: dict[str, Any] = stored_profile(
    {
        "AccessPoints": [{"Code": "internet", "Properties": {}}],
        "CustomFields": {"Custom Field 1": "one", "Custom Field 2": "two"},
        "DataService": {
            "Plan": {"Code": "P1"},
            "ServiceAreas": [],
            "Features": [],
            "DailyTreshold": 10,
            "MonthlyTreshold": 100,
        },
        "SMSService": {"PlanCode": "S", "DailyTreshold": 1, "MonthlyTreshold": 2},
        "VoiceService": {"PlanCode": "V", "DailyTreshold": 3, "MonthlyTreshold": 4},
    }
)
NO_CUSTOM_FIELDS = {f"Custom Field {n}": "" for n in range(1, 8)}
SIM = EditableSim(PROFILE, "fleet-1", {"site": "ghent", "tier": "gold"})


def edited(patch: object) -> EditableSim:
    result = apply_edit(SIM, patch)
    assert result.problems == ()
    assert result.sim is not None
    return result.sim


def problems(patch: object) -> dict[str, str]:
    result = apply_edit(SIM, patch)
    assert result.sim is None
    return {p.field: p.problem for p in result.problems}


# RFC 7396 appendix A, every example.
@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc_7396(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


def test_merge_patch_leaves_its_inputs_alone() -> None:
    target = {"a": {"b": 1}}
    patch = {"a": {"c": 2}}
    merge_patch(target, patch)
    assert target == {"a": {"b": 1}}
    assert patch == {"a": {"c": 2}}


def test_the_editable_document_shows_every_editable_field() -> None:
    assert editable_document(SIM) == {
        "CostCenter": "fleet-1",
        "CustomFields": {
            "Custom Field 1": "one",
            "Custom Field 2": "two",
            **{f"Custom Field {n}": "" for n in range(3, 8)},
        },
        "DataService": {"DailyTreshold": 10, "MonthlyTreshold": 100},
        "SMSService": {"DailyTreshold": 1, "MonthlyTreshold": 2},
        "VoiceService": {"DailyTreshold": 3, "MonthlyTreshold": 4},
        "Labels": {"site": "ghent", "tier": "gold"},
    }


def test_an_empty_patch_changes_nothing() -> None:
    assert edited({}) == SIM
    assert changed_fields(SIM, edited({})) == {}


def test_a_patch_sets_and_clears_what_it_names_and_keeps_the_rest() -> None:
    sim = edited(
        {
            "CostCenter": "fleet-2",
            "CustomFields": {"Custom Field 1": None, "Custom Field 2": "", "Custom Field 3": "x"},
            "DataService": {"DailyTreshold": 20},
            "SMSService": {"MonthlyTreshold": None},
            "Labels": {"site": None, "zone": "b"},
        }
    )
    assert sim.cost_center == "fleet-2"
    # Stored whole, as the list answers it.
    assert sim.profile["CustomFields"] == {**NO_CUSTOM_FIELDS, "Custom Field 3": "x"}
    assert list(sim.profile) == list(PROFILE)
    assert sim.profile["DataService"] == {**PROFILE["DataService"], "DailyTreshold": 20}
    assert sim.profile["SMSService"] == {"PlanCode": "S", "DailyTreshold": 1, "MonthlyTreshold": 0}
    assert sim.profile["VoiceService"] == PROFILE["VoiceService"]
    assert sim.profile["AccessPoints"] == PROFILE["AccessPoints"]
    assert sim.labels == {"tier": "gold", "zone": "b"}
    assert PROFILE["CustomFields"] == {
        **NO_CUSTOM_FIELDS,
        "Custom Field 1": "one",
        "Custom Field 2": "two",
    }


def test_null_removes_whole_members() -> None:
    sim = edited({"CostCenter": None, "CustomFields": None, "Labels": None})
    assert sim.cost_center is None
    assert sim.profile["CustomFields"] == NO_CUSTOM_FIELDS
    assert sim.labels == {}
    assert edited({"CostCenter": ""}).cost_center is None


def test_an_edit_does_not_reshape_what_it_leaves_alone() -> None:
    sim = edited({"Labels": {"a": "b"}})
    assert sim.profile == PROFILE
    bare = apply_edit(EditableSim({}, None), {"CostCenter": "x"}).sim
    assert bare is not None
    # Stored whole (the five keys, seven custom fields), the services as they were (empty).
    assert bare.profile == {
        "AccessPoints": [],
        "CustomFields": NO_CUSTOM_FIELDS,
        "DataService": {},
        "SMSService": {},
        "VoiceService": {},
    }


def test_changed_fields_name_each_field() -> None:
    after = edited({"DataService": {"DailyTreshold": 11}, "Labels": {"site": None, "new": "1"}})
    assert changed_fields(SIM, after) == {
        "DataService.DailyTreshold": {"before": 10, "after": 11},
        "Labels.site": {"before": "ghent", "after": None},
        "Labels.new": {"before": None, "after": "1"},
    }


@pytest.mark.parametrize("patch", [[], ["CostCenter"], "x", 3, None, True])
def test_a_patch_that_is_not_an_object_is_refused(patch: object) -> None:
    assert problems(patch) == {"body": "a merge patch of a SIM must be a JSON object"}


@pytest.mark.parametrize(
    ("patch", "where", "why"),
    [
        ({"State": "Active"}, "State", "lifecycle requests"),
        ({"State": None}, "State", "lifecycle requests"),
        ({"AccessPoints": []}, "AccessPoints", "operator"),
        ({"Device": {"Identifier": "1"}}, "Device", "identity"),
        ({"ICCID": "8932"}, "ICCID", "identity"),
        ({"MSISDN": "3247"}, "MSISDN", "identity"),
        ({"IMSI": "2060"}, "IMSI", "identity"),
        ({"Colour": "red"}, "Colour", "not a field of a SIM"),
        ({"DataService": {"Plan": {"Code": "X"}}}, "DataService.Plan", "plans"),
        ({"DataService": {"ServiceAreas": []}}, "DataService.ServiceAreas", "service areas"),
        ({"DataService": {"Features": []}}, "DataService.Features", "features"),
        ({"SMSService": {"PlanCode": "X"}}, "SMSService.PlanCode", "plans"),
        ({"VoiceService": {"FeatureCodes": []}}, "VoiceService.FeatureCodes", "features"),
        ({"VoiceService": {"Speed": 1}}, "VoiceService.Speed", "not a field of VoiceService"),
        ({"DataService": None}, "DataService", "cannot be removed"),
        ({"DataService": 5}, "DataService", "must be an object"),
        ({"CustomFields": {"Custom Field 8": "x"}}, "CustomFields.Custom Field 8", "not a custom"),
    ],
)
def test_fields_a_customer_cannot_change_are_named_with_the_reason(
    patch: dict[str, Any], where: str, why: str
) -> None:
    found = problems(patch)
    assert list(found) == [where]
    assert why in found[where]


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"CostCenter": 5}, "CostCenter"),
        ({"CostCenter": "x" * 201}, "CostCenter"),
        ({"CostCenter": "a\x00b"}, "CostCenter"),
        ({"CustomFields": {"Custom Field 1": "x" * 201}}, "CustomFields.Custom Field 1"),
        ({"CustomFields": {"Custom Field 1": 7}}, "CustomFields.Custom Field 1"),
        ({"CustomFields": ["x"]}, "CustomFields"),
        ({"CustomFields": "x"}, "CustomFields"),
        ({"DataService": {"DailyTreshold": -1}}, "DataService.DailyTreshold"),
        ({"DataService": {"DailyTreshold": MAX_THRESHOLD + 1}}, "DataService.DailyTreshold"),
        ({"SMSService": {"MonthlyTreshold": "10"}}, "SMSService.MonthlyTreshold"),
        ({"SMSService": {"MonthlyTreshold": 1.5}}, "SMSService.MonthlyTreshold"),
        ({"VoiceService": {"DailyTreshold": True}}, "VoiceService.DailyTreshold"),
        ({"Labels": ["a"]}, "Labels"),
        ({"Labels": {"bad key": "x"}}, "Labels"),
        ({"Labels": {"k": 1}}, "Labels"),
        ({"Labels": {"k": "v" * 201}}, "Labels"),
    ],
)
def test_values_out_of_bounds_are_named(patch: dict[str, Any], where: str) -> None:
    assert where in problems(patch)


def test_the_limits_themselves_are_accepted() -> None:
    sim = edited(
        {
            "CostCenter": "x" * 200,
            "DataService": {"DailyTreshold": MAX_THRESHOLD, "MonthlyTreshold": 0},
            "Labels": {f"k{n}": "v" * 200 for n in range(MAX_LABELS - 2)},
        }
    )
    assert len(sim.labels) == MAX_LABELS
    assert "Labels" in problems({"Labels": {f"k{n}": "" for n in range(MAX_LABELS - 1)}})


def test_every_problem_is_reported_at_once() -> None:
    assert set(problems({"State": "Active", "ICCID": "1", "Plan": "x"})) == {
        "State",
        "ICCID",
        "Plan",
    }
