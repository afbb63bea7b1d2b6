"""Editing a SIM: what a customer may change, a JSON Merge Patch of it applied, checked (pure).

The API's ``PATCH /simcards/{iccid}`` and the console's edit form both come here: the route
parses a body, the console builds a patch from its form, and ``apply_edit`` answers the SIM's new
editable fields or every problem found, each naming its field. Storage writes the result.

What is editable, as one document (``editable_document``), in the wire's spelling::

    {"CostCenter": "", "CustomFields": {"Custom Field 1": "", … 7},
     "DataService": {"DailyTreshold": 0, "MonthlyTreshold": 0}, "SMSService": {…},
     "VoiceService": {…}, "Labels": {"site": "ghent", …}}

A patch is applied to that document with RFC 7396's rules exactly (``merge_patch``): ``null``
removes a member, an object merges into an object, anything else replaces. Removing means
back to the default: a cost center or custom field becomes ``""`` (as does setting it to ``""``),
a threshold 0, a label disappears; ``"Labels": null`` removes them all and ``"CustomFields":
null`` clears all seven. Anything outside the document (the state, plans, service areas,
features, access points, the identifiers, unknown keys) is a problem that says why, and so is
a value of the wrong type or out of bounds (the import's bounds: ``m2m.profile``,
``m2m.labels``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from m2m.audit import changes_between
from m2m.freetext import text_problem
from m2m.labels import label_problems
from m2m.profile import (
    CUSTOM_FIELD_NAMES,
    MAX_THRESHOLD,
    TEXT_LENGTH,
    custom_fields_document,
    stored_profile,
)

SERVICES = ("DataService", "SMSService", "VoiceService")
THRESHOLDS = ("DailyTreshold", "MonthlyTreshold")
EDITABLE_FIELDS = ("CostCenter", "CustomFields", *SERVICES, "Labels")

_EDITABLE_SUMMARY = (
    "editable: CostCenter, CustomFields, the DailyTreshold and MonthlyTreshold of DataService, "
    "SMSService and VoiceService, and Labels"
)
# Why each field a customer may see but not change is refused.
_NOT_EDITABLE = {
    "State": "the state changes through the lifecycle requests (POST /requests/activation, "
    "/deactivation, /reactivation, /termination), not by an update",
    "AccessPoints": "access points are set by the operator",
    "Device": "the SIM's identity cannot be changed",
    "ICCID": "the SIM's identity cannot be changed",
    "MSISDN": "the SIM's identity cannot be changed",
    "IMSI": "the SIM's identity cannot be changed",
}
_OPERATORS_SERVICE_FIELDS = {
    "Plan": "plans are set by the operator",
    "PlanCode": "plans are set by the operator",
    "ServiceAreas": "service areas are set by the operator",
    "Features": "features are set by the operator",
    "FeatureCodes": "features are set by the operator",
}


@dataclass(frozen=True, slots=True)
class EditableSim:
    """A SIM's stored fields an edit may change: its whole stored profile (the edit touches only
    custom fields and thresholds in it), its cost center (None: unset) and its labels."""

    profile: dict[str, Any]
    cost_center: str | None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """What is wrong with one field of a patch: ``field`` is its path, dotted
    (``DataService.Plan``, ``Labels.site``), ``problem`` says why, for a human."""

    field: str
    problem: str


@dataclass(frozen=True, slots=True)
class EditResult:
    """The SIM after the edit (None when there are problems), and the problems."""

    sim: EditableSim | None
    problems: tuple[FieldProblem, ...] = ()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 §2: ``patch`` applied to ``target``. Neither is modified; the result shares the
    members neither touched (JSON documents here are never modified in place)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def editable_document(sim: EditableSim) -> dict[str, Any]:
    """The SIM's editable fields as one document in the wire's spelling (see the module)."""
    document: dict[str, Any] = {
        "CostCenter": sim.cost_center or "",
        "CustomFields": custom_fields_document(sim.profile.get("CustomFields", {})),
    }
    for service in SERVICES:
        stored = sim.profile.get(service, {})
        document[service] = {name: stored.get(name, 0) for name in THRESHOLDS}
    document["Labels"] = dict(sim.labels)
    return document


def flat_fields(document: Mapping[str, Any]) -> dict[str, Any]:
    """An editable document as ``{dotted path: value}`` (``DataService.DailyTreshold``,
    ``Labels.site``): what the audit trail compares, one entry per field changed."""
    flat: dict[str, Any] = {}
    for name, value in document.items():
        if isinstance(value, Mapping):
            for inner, inner_value in value.items():
                flat[f"{name}.{inner}"] = inner_value
        else:
            flat[name] = value
    return flat


def _shape_problems(patch: Mapping[str, Any]) -> list[FieldProblem]:
    """The members of ``patch`` that name something a customer cannot change."""
    problems: list[FieldProblem] = []
    for name, value in patch.items():
        if name in _NOT_EDITABLE:
            problems.append(FieldProblem(name, _NOT_EDITABLE[name]))
        elif name not in EDITABLE_FIELDS:
            problems.append(FieldProblem(name[:100], f"not a field of a SIM ({_EDITABLE_SUMMARY})"))
        elif name in SERVICES:
            problems.extend(_service_shape_problems(name, value))
        elif name == "CustomFields" and isinstance(value, dict):
            problems.extend(
                FieldProblem(
                    f"CustomFields.{key[:100]}",
                    "not a custom field: the keys are 'Custom Field 1' to 'Custom Field 7'",
                )
                for key in value
                if key not in CUSTOM_FIELD_NAMES
            )
    return problems


def _service_shape_problems(service: str, value: Any) -> list[FieldProblem]:
    if value is None:
        return [FieldProblem(service, f"cannot be removed; patch its {' or '.join(THRESHOLDS)}")]
    if not isinstance(value, dict):
        return [FieldProblem(service, "must be an object of DailyTreshold and MonthlyTreshold")]
    problems = []
    for name in value:
        if name in THRESHOLDS:
            continue
        why = _OPERATORS_SERVICE_FIELDS.get(
            name, f"not a field of {service}; editable: {', '.join(THRESHOLDS)}"
        )
        problems.append(FieldProblem(f"{service}.{name[:100]}", why))
    return problems


def _text_problem(path: str, value: Any) -> FieldProblem | None:
    if not isinstance(value, str):
        return FieldProblem(path, 'must be a string (null or "" clears it)')
    problem = text_problem(path, value, TEXT_LENGTH)
    return FieldProblem(path, problem) if problem else None


def _threshold_problem(path: str, value: Any) -> FieldProblem | None:
    # bool is an int in Python; JSON's true is not a number.
    if isinstance(value, bool) or not isinstance(value, int):
        return FieldProblem(path, "must be a whole number (null resets it to 0)")
    if not 0 <= value <= MAX_THRESHOLD:
        return FieldProblem(path, f"must be between 0 and {MAX_THRESHOLD}")
    return None


def _value_problems(document: Mapping[str, Any]) -> list[FieldProblem]:
    """What is wrong with the values of a patched editable document (types and bounds)."""
    problems: list[FieldProblem | None] = []
    if "CostCenter" in document:
        problems.append(_text_problem("CostCenter", document["CostCenter"]))
    custom = document.get("CustomFields", {})
    if not isinstance(custom, dict):
        problems.append(FieldProblem("CustomFields", "must be an object of custom fields"))
    else:
        problems.extend(_text_problem(f"CustomFields.{k}", v) for k, v in custom.items())
    for service in SERVICES:
        thresholds = document.get(service, {})
        problems.extend(
            _threshold_problem(f"{service}.{name}", thresholds[name])
            for name in THRESHOLDS
            if name in thresholds
        )
    labels = document.get("Labels", {})
    if not isinstance(labels, dict):
        problems.append(FieldProblem("Labels", "must be an object of label keys to strings"))
    else:
        problems.extend(FieldProblem("Labels", problem) for problem in label_problems(labels))
    return [problem for problem in problems if problem is not None]


def _stored(current: EditableSim, document: Mapping[str, Any]) -> EditableSim:
    """The SIM whose editable document is ``document`` (checked), everything else as it was.
    Only the thresholds that changed are written into a service, so an edit never reshapes the
    rest of it (copied one level down where it changes: the current profile is left as it is);
    the profile comes out as every writer stores it (``stored_profile``)."""
    before = editable_document(current)
    profile = dict(current.profile)
    profile["CustomFields"] = document.get("CustomFields", {})  # completed by stored_profile
    for service in SERVICES:
        thresholds = document.get(service, {})
        changed = {
            name: thresholds.get(name, 0)
            for name in THRESHOLDS
            if thresholds.get(name, 0) != before[service][name]
        }
        if changed:
            profile[service] = {**profile.get(service, {}), **changed}
    return EditableSim(
        profile=stored_profile(profile),
        cost_center=document.get("CostCenter") or None,
        labels=dict(document.get("Labels", {})),
    )


def apply_edit(current: EditableSim, patch: object) -> EditResult:
    """``patch`` (a parsed JSON Merge Patch) applied to ``current``: the SIM's new editable
    fields, or every problem with the patch. An empty patch changes nothing."""
    if not isinstance(patch, dict):
        return EditResult(
            None,
            (FieldProblem("body", "a merge patch of a SIM must be a JSON object"),),
        )
    problems = _shape_problems(patch)
    if problems:
        return EditResult(None, tuple(problems))
    document = merge_patch(editable_document(current), patch)
    problems = _value_problems(document)
    if problems:
        return EditResult(None, tuple(problems))
    return EditResult(_stored(current, document))


def changed_fields(before: EditableSim, after: EditableSim) -> dict[str, Any]:
    """``{dotted field: {"before", "after"}}`` for each editable field that differs: the audit
    entry's changes (no SIM field is a secret). Empty: the edit changes nothing."""
    return changes_between(
        flat_fields(editable_document(before)), flat_fields(editable_document(after))
    )
