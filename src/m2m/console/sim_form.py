"""The SIM edit form: what it shows, and the merge patch a submitted form asks for (pure).

The form edits what the API's ``PATCH /simcards/{iccid}`` may change (``m2m.sim_edit``): the
cost center, the seven custom fields, the daily and monthly thresholds of Data, SMS and Voice,
and the labels. A submitted form is the whole of those fields as the person wants them; it
becomes the smallest merge patch that gets there from the SIM as the form showed it (a label
gone is ``null``), and ``m2m.sim_edit.apply_edit`` checks it exactly as it checks the API's.
So the console and the API accept and refuse the same values, with the same messages, and
the audit trail records the same changes.

Here is only what a form adds: text fields to turn into numbers and labels, and the
problems that only a form can have (a threshold that is not a number, a label row with a value
but no key, a key typed twice), each named by the form field it belongs next to.

Text is kept as typed (the API does not trim it either); label keys lose surrounding blanks,
which a key cannot hold anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from m2m.console import sim_profile
from m2m.profile import CUSTOM_FIELD_NAMES

# (form key, the editable document's service), as the SIM page shows them (``sim_profile``).
SERVICES = tuple((key, service) for key, _name, service in sim_profile.SERVICES)
PERIODS = (("daily", "DailyTreshold"), ("monthly", "MonthlyTreshold"))
LABELS = "labels"  # the form field (the fieldset) label problems are shown next to
GENERAL = "form"  # problems that belong to no field, shown above the form
NEW_LABEL_ROWS = 3  # empty rows the form offers for new labels


def custom_field_input(name: str) -> str:
    """``Custom Field 3`` -> ``custom_field_3``, its input's name (as the import's column)."""
    return "custom_field_" + name.rsplit(" ", 1)[1]


def threshold_input(service_key: str, period: str) -> str:
    """``data``, ``daily`` -> ``data_daily_threshold`` (as the import's column)."""
    return f"{service_key}_{period}_threshold"


@dataclass(frozen=True, slots=True)
class LabelRow:
    key: str
    value: str
    remove: bool = False


@dataclass(frozen=True, slots=True)
class FormValues:
    """The form's fields as text, by input name, and its label rows."""

    fields: dict[str, str]
    labels: list[LabelRow]

    def with_new_rows(self) -> list[LabelRow]:
        """The label rows to show: these, and empty ones to add labels with."""
        return [*self.labels, *[LabelRow("", "") for _ in range(NEW_LABEL_ROWS)]]


Problems = dict[str, list[str]]  # input name (or LABELS, GENERAL) -> what is wrong there


def values_of(document: Mapping[str, Any]) -> FormValues:
    """The form showing an editable document (``m2m.sim_edit.editable_document``)."""
    fields = {"cost_center": str(document["CostCenter"])}
    for name in CUSTOM_FIELD_NAMES:
        fields[custom_field_input(name)] = str(document["CustomFields"][name])
    for key, service in SERVICES:
        for period, threshold in PERIODS:
            fields[threshold_input(key, period)] = str(document[service][threshold])
    labels = [LabelRow(k, v) for k, v in sorted(document["Labels"].items())]
    return FormValues(fields, labels)


def submitted(
    get: Mapping[str, str], keys: Sequence[str], values: Sequence[str], removed: Sequence[str]
) -> FormValues:
    """The values of a submitted form: ``get`` its single fields, ``keys`` and ``values`` its
    label rows in order, ``removed`` the indexes of the rows ticked for removal."""
    names = ["cost_center", *(custom_field_input(n) for n in CUSTOM_FIELD_NAMES)]
    names += [threshold_input(k, p) for k, _ in SERVICES for p, _ in PERIODS]
    fields = {name: get.get(name, "") for name in names}
    gone = set(removed)
    rows = [
        LabelRow(key.strip(), value, str(index) in gone)
        for index, (key, value) in enumerate(zip(keys, values, strict=True))
        if key.strip() or value  # an untouched empty row is no label
    ]
    return FormValues(fields, rows)


def _threshold(text: str) -> int | None:
    digits = text.strip()
    return int(digits) if digits.isascii() and digits.isdigit() else None


def patch_from(values: FormValues, document: Mapping[str, Any]) -> tuple[dict[str, Any], Problems]:
    """The merge patch from ``document`` (what the form showed) to ``values``, and the form's
    own problems (when there are any, the patch is not to be applied)."""
    problems: Problems = {}
    patch: dict[str, Any] = {}
    fields = values.fields
    if fields["cost_center"] != document["CostCenter"]:
        patch["CostCenter"] = fields["cost_center"]
    custom = {
        name: fields[custom_field_input(name)]
        for name in CUSTOM_FIELD_NAMES
        if fields[custom_field_input(name)] != document["CustomFields"][name]
    }
    if custom:
        patch["CustomFields"] = custom
    for key, service in SERVICES:
        for period, threshold in PERIODS:
            name = threshold_input(key, period)
            number = _threshold(fields[name])
            if number is None:
                problems[name] = ["Enter a whole number, 0 or more."]
            elif number != document[service][threshold]:
                patch.setdefault(service, {})[threshold] = number
    wanted: dict[str, str] = {}
    for row in values.labels:
        if row.remove:
            continue
        if not row.key:
            problems.setdefault(LABELS, []).append(f"Give the value {row.value[:40]!r} a key.")
        elif row.key in wanted:
            problems.setdefault(LABELS, []).append(f"The key {row.key[:64]!r} is there twice.")
        else:
            wanted[row.key] = row.value
    current: Mapping[str, str] = document["Labels"]
    labels: dict[str, str | None] = {k: None for k in current if k not in wanted}
    labels.update({k: v for k, v in wanted.items() if current.get(k) != v})
    if labels:
        patch["Labels"] = labels
    return patch, problems


def input_of(field: str) -> str:
    """The form field next to which a problem of ``m2m.sim_edit`` (named by its dotted path:
    ``CustomFields.Custom Field 3``, ``DataService.DailyTreshold``, ``Labels``) is shown."""
    head, _, tail = field.partition(".")
    if head == "CostCenter":
        return "cost_center"
    if head == "CustomFields" and tail in CUSTOM_FIELD_NAMES:
        return custom_field_input(tail)
    if head == "Labels":
        return LABELS
    for key, service in SERVICES:
        for period, threshold in PERIODS:
            if (head, tail) == (service, threshold):
                return threshold_input(key, period)
    return GENERAL
