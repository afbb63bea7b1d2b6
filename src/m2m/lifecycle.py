"""The SIM lifecycle: which operation moves which state where. Pure decisions, no I/O.

    Ready --activation--> Active --deactivation--> Deactivated --reactivation--> Active
    Ready | Active | Deactivated --termination--> Terminated (final)

An operation whose target state already holds succeeds and says nothing changed; an impossible one
fails with a message naming the current state and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from m2m.identifiers import SimState


class Operation(StrEnum):
    ACTIVATION = "activation"
    DEACTIVATION = "deactivation"
    REACTIVATION = "reactivation"
    TERMINATION = "termination"


class ResultStatus(StrEnum):
    SUCCESS = "Success"
    FAILURE = "Failure"


# operation -> (states it applies to, state it leads to)
TRANSITIONS: dict[Operation, tuple[frozenset[SimState], SimState]] = {
    Operation.ACTIVATION: (frozenset({SimState.READY}), SimState.ACTIVE),
    Operation.DEACTIVATION: (frozenset({SimState.ACTIVE}), SimState.DEACTIVATED),
    Operation.REACTIVATION: (frozenset({SimState.DEACTIVATED}), SimState.ACTIVE),
    Operation.TERMINATION: (
        frozenset({SimState.READY, SimState.ACTIVE, SimState.DEACTIVATED}),
        SimState.TERMINATED,
    ),
}


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one SIM: change to ``new_state`` (None: change nothing), and report."""

    status: ResultStatus
    new_state: SimState | None = None
    messages: list[str] = field(default_factory=list)


def allowed_operations(state: SimState) -> list[Operation]:
    return [op for op, (sources, _target) in TRANSITIONS.items() if state in sources]


def decide(operation: Operation, current: SimState) -> Decision:
    sources, target = TRANSITIONS[operation]
    if current == target:
        return Decision(
            ResultStatus.SUCCESS,
            messages=[f"The SIM is already {current.value}; nothing was changed."],
        )
    if current in sources:
        return Decision(ResultStatus.SUCCESS, new_state=target)
    allowed = allowed_operations(current)
    if allowed:
        what = "allowed operations: " + ", ".join(op.value for op in allowed)
    else:
        what = "it is final: no operation is possible"
    return Decision(
        ResultStatus.FAILURE,
        messages=[
            f"{operation.value.capitalize()} is not possible: the SIM is {current.value}; {what}."
        ],
    )


def not_found() -> Decision:
    # The same words whether the device does not exist or belongs to another account.
    return Decision(ResultStatus.FAILURE, messages=["Device not found."])
