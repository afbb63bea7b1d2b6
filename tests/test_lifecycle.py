"""Every transition and non-transition of the lifecycle, as pure decisions."""

from __future__ import annotations

import pytest

from m2m.identifiers import SimState
from m2m.lifecycle import Operation, ResultStatus, decide

A, D, R, T = (
    Operation.ACTIVATION,
    Operation.DEACTIVATION,
    Operation.REACTIVATION,
    Operation.TERMINATION,
)
READY, ACTIVE, DEACT, TERM = (
    SimState.READY,
    SimState.ACTIVE,
    SimState.DEACTIVATED,
    SimState.TERMINATED,
)

CHANGES = [
    (A, READY, ACTIVE),
    (D, ACTIVE, DEACT),
    (R, DEACT, ACTIVE),
    (T, READY, TERM),
    (T, ACTIVE, TERM),
    (T, DEACT, TERM),
]
ALREADY = [(A, ACTIVE), (D, DEACT), (R, ACTIVE), (T, TERM)]
IMPOSSIBLE = [
    (A, DEACT),
    (A, TERM),
    (D, READY),
    (D, TERM),
    (R, READY),
    (R, TERM),
]


def test_the_tables_cover_every_operation_and_state() -> None:
    covered = {(op, s) for op, s, _ in CHANGES} | set(ALREADY) | set(IMPOSSIBLE)
    assert covered == {(op, s) for op in Operation for s in SimState}


@pytest.mark.parametrize(("operation", "current", "target"), CHANGES)
def test_transitions(operation: Operation, current: SimState, target: SimState) -> None:
    decision = decide(operation, current)
    assert decision.status is ResultStatus.SUCCESS
    assert decision.new_state is target
    assert decision.messages == []


@pytest.mark.parametrize(("operation", "current"), ALREADY)
def test_target_already_holds(operation: Operation, current: SimState) -> None:
    decision = decide(operation, current)
    assert decision.status is ResultStatus.SUCCESS
    assert decision.new_state is None
    assert "nothing was changed" in decision.messages[0]
    assert current.value in decision.messages[0]


@pytest.mark.parametrize(("operation", "current"), IMPOSSIBLE)
def test_impossible_operations_name_state_and_alternatives(
    operation: Operation, current: SimState
) -> None:
    decision = decide(operation, current)
    assert decision.status is ResultStatus.FAILURE
    assert decision.new_state is None
    message = decision.messages[0]
    assert current.value in message
    if current is TERM:
        assert "final" in message
    else:
        assert "allowed operations" in message
