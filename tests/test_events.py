"""The event catalog: type filters and the envelope's schemas (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from m2m.events import (
    CATALOG,
    EventType,
    InvalidTypePattern,
    RequestCompleted,
    SimStateChanged,
    selected_types,
    typed_envelope,
)


def test_no_pattern_and_star_select_every_type() -> None:
    assert selected_types([]) is None
    assert selected_types(["*"]) is None
    assert selected_types(["sim.updated", "*"]) is None


def test_exact_types_and_families() -> None:
    assert selected_types(["sim.updated"]) == {"sim.updated"}
    assert selected_types(["sim.*"]) == {"sim.state_changed", "sim.updated"}
    assert selected_types(["request.*", "sim.updated"]) == {"request.completed", "sim.updated"}


def test_a_family_without_types_yet_selects_nothing() -> None:
    # A family whose types come later (billing, say): subscribing to it ahead is fine.
    assert selected_types(["billing.*"]) == frozenset()
    assert selected_types(["usage.*"]) == {"usage.threshold_reached", "usage.limit_exceeded"}


@pytest.mark.parametrize(
    "pattern", ["sim.state_change", "SIM.UPDATED", "sim*", ".*", "sim..*", "a b.*", "x" * 65]
)
def test_unknown_types_and_malformed_families_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidTypePattern):
        selected_types([pattern])


def test_every_type_has_a_version_and_a_typed_envelope() -> None:
    for event_type in EventType:
        version, _ = CATALOG[event_type]
        assert version >= 1
        schema = typed_envelope(event_type).model_json_schema()
        assert schema["properties"]["type"]["const"] == event_type.value
        assert set(schema["required"]) >= {"id", "type", "version", "occurred_at", "account"}


def test_the_typed_envelope_checks_the_data() -> None:
    envelope = typed_envelope(EventType.SIM_STATE_CHANGED)
    event = {
        "id": "7",
        "type": "sim.state_changed",
        "version": 1,
        "occurred_at": datetime(2026, 12, 1, tzinfo=UTC).isoformat(),
        "account": 1,
        "sim": {"ICCID": "89320180000000000001", "MSISDN": "32480000000", "labels": {}},
        "data": {"from": "Active", "to": "Deactivated", "cause": "request"},
    }
    parsed = envelope.model_validate(event)
    assert isinstance(parsed.data, SimStateChanged)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="to"):
        envelope.model_validate({**event, "data": {"from": "Active", "to": "Gone", "cause": "x"}})
    with pytest.raises(ValueError, match="type"):
        envelope.model_validate({**event, "type": "sim.updated"})


def test_request_completed_counts_results() -> None:
    data = RequestCompleted.model_validate(
        {"TrackingNumber": "t", "operation": "activation", "devices": 3, "results": {"Success": 3}}
    )
    assert data.results == {"Success": 3}
