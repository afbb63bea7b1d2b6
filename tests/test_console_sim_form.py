"""The SIM edit form's own logic: the form a SIM shows, and the smallest merge patch a submitted
form asks for, with the problems only a form can have."""

from __future__ import annotations

from typing import Any

from m2m.console.sim_form import (
    GENERAL,
    LABELS,
    FormValues,
    LabelRow,
    input_of,
    patch_from,
    submitted,
    values_of,
)
from m2m.sim_edit import EditableSim, editable_document

PROFILE: dict[str, Any] = {
    "CustomFields": {"Custom Field 2": "B"},
    "DataService": {"DailyTreshold": 100, "MonthlyTreshold": 3000},
}


def document(labels: dict[str, str] | None = None) -> dict[str, Any]:
    return editable_document(EditableSim(PROFILE, "Fleet", labels or {}))


def form_of(values: FormValues, **changes: str) -> FormValues:
    return FormValues({**values.fields, **changes}, values.labels)


def test_the_form_shows_every_editable_field() -> None:
    values = values_of(document({"site": "ghent", "batch": "7"}))
    assert values.fields["cost_center"] == "Fleet"
    assert values.fields["custom_field_1"] == ""
    assert values.fields["custom_field_2"] == "B"
    assert values.fields["data_daily_threshold"] == "100"
    assert values.fields["voice_monthly_threshold"] == "0"
    assert values.labels == [LabelRow("batch", "7"), LabelRow("site", "ghent")]
    assert len(values.with_new_rows()) == 2 + 3


def test_an_unchanged_form_is_an_empty_patch() -> None:
    current = document({"site": "ghent"})
    assert patch_from(values_of(current), current) == ({}, {})


def test_the_patch_holds_only_what_changed() -> None:
    current = document()
    values = form_of(
        values_of(current), cost_center="", custom_field_3="x", sms_daily_threshold=" 7 "
    )
    assert patch_from(values, current) == (
        {
            "CostCenter": "",
            "CustomFields": {"Custom Field 3": "x"},
            "SMSService": {"DailyTreshold": 7},
        },
        {},
    )


def test_labels_are_added_changed_renamed_and_removed() -> None:
    current = document({"site": "ghent", "batch": "7", "old": "x"})
    values = submitted(
        values_of(current).fields,
        keys=["batch", "old", "site", " fleet ", "", ""],
        values=["8", "x", "ghent", "north", "", ""],
        removed=["2"],  # site
    )
    patch, problems = patch_from(values, current)
    assert problems == {}
    assert patch == {"Labels": {"site": None, "batch": "8", "fleet": "north"}}

    renamed = submitted(
        values_of(current).fields, ["batch", "new", "site"], ["7", "x", "ghent"], []
    )
    assert patch_from(renamed, current)[0] == {"Labels": {"old": None, "new": "x"}}


def test_what_only_a_form_gets_wrong_is_named_by_its_field() -> None:
    current = document()
    values = submitted(
        {**values_of(current).fields, "data_daily_threshold": "1e3", "sms_monthly_threshold": ""},
        keys=["", "a", "a"],
        values=["orphan", "1", "2"],
        removed=[],
    )
    _patch, problems = patch_from(values, current)
    assert problems["data_daily_threshold"] == ["Enter a whole number, 0 or more."]
    assert problems["sms_monthly_threshold"] == ["Enter a whole number, 0 or more."]
    assert problems[LABELS] == ["Give the value 'orphan' a key.", "The key 'a' is there twice."]


def test_an_edit_problem_is_shown_next_to_its_field() -> None:
    assert input_of("CostCenter") == "cost_center"
    assert input_of("CustomFields.Custom Field 7") == "custom_field_7"
    assert input_of("VoiceService.MonthlyTreshold") == "voice_monthly_threshold"
    assert input_of("Labels") == LABELS
    assert input_of("Labels.site") == LABELS
    assert input_of("State") == GENERAL
