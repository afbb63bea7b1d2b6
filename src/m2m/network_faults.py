"""Faults the sandbox injects into the network on demand: "the next deactivation of this SIM
fails with this message", "every operation on it times out", "add 2 s of latency".

``matching`` is the pure decision (which fault, if any, an operation on a SIM meets);
``FaultStore`` keeps the faults set through ``/sandbox/faults`` in the process's memory, and
``FaultyNetwork`` wraps the real adapter (the simulator, or any other) so that the worker meets
them. In memory on purpose: ``m2m serve --sandbox`` runs its worker in the same process as the
control API. A standalone ``m2m worker`` does not see them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from m2m.freetext import WITHOUT_CONTROL_CHARACTERS
from m2m.identifiers import SimState
from m2m.lifecycle import Operation
from m2m.network import (
    TIMEOUT_MESSAGE,
    NetworkAdapter,
    NetworkResult,
    ReportUsage,
    SimRef,
    UsageSource,
    UsageSourceAdapter,
)

ANY_OPERATION: Final = "*"


class FaultKind(StrEnum):
    FAILURE = "failure"  # the network refuses the change, with the fault's message
    TIMEOUT = "timeout"  # the network does not answer: the worker's own time-out failure
    LATENCY = "latency"  # the change succeeds (or not, as the adapter decides) after a delay


@dataclass(frozen=True, slots=True)
class Fault:
    identifier: str  # an ICCID, IMSI or MSISDN of the SIM
    operation: str  # an Operation's value, or "*" for all four
    kind: FaultKind
    message: str | None = None  # a failure's message (a default one when None)
    latency_ms: int = 0  # a latency fault's delay
    count: int | None = None  # how many more operations it applies to; None: until cleared

    def applies_to(self, sim: SimRef, operation: Operation) -> bool:
        return self.identifier in (sim.iccid, sim.imsi, sim.msisdn) and self.operation in (
            ANY_OPERATION,
            operation.value,
        )


class SandboxFault(BaseModel):
    """A fault to set (``POST /sandbox/faults``, a scenario's ``faults``)."""

    model_config = ConfigDict(extra="forbid")

    identifier: str = Field(
        min_length=1,
        max_length=32,
        pattern=WITHOUT_CONTROL_CHARACTERS,
        description="The SIM's ICCID, IMSI or MSISDN.",
    )
    operation: Operation | Literal["*"] = Field(
        default=ANY_OPERATION, description='The operation that meets the fault, or "*" for all.'
    )
    kind: FaultKind = Field(
        default=FaultKind.FAILURE,
        description="failure: the operation fails with `message`; timeout: it fails as when "
        "the network does not answer; latency: it is delayed by `latency_ms`.",
    )
    message: str | None = Field(
        default=None,
        max_length=500,
        # It is stored with the item's outcome: PostgreSQL cannot store NUL.
        pattern=WITHOUT_CONTROL_CHARACTERS,
        description="A failure's message (the callback's messages).",
    )
    latency_ms: StrictInt = Field(
        default=0, ge=0, le=60_000, description="A latency fault's delay."
    )
    count: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Apply to the next N operations only; null: until cleared.",
    )

    def fault(self) -> Fault:
        operation = self.operation.value if isinstance(self.operation, Operation) else "*"
        return Fault(
            identifier=self.identifier,
            operation=operation,
            kind=self.kind,
            message=self.message,
            latency_ms=self.latency_ms,
            count=self.count,
        )


def matching(faults: Sequence[Fault], sim: SimRef, operation: Operation) -> int | None:
    """The index of the fault an operation on ``sim`` meets: the first set that applies (a
    test sets the specific ones it needs before broad ones), or None."""
    for index, fault in enumerate(faults):
        if fault.applies_to(sim, operation) and (fault.count is None or fault.count > 0):
            return index
    return None


def failure_message(fault: Fault, sim: SimRef, target: SimState) -> str:
    if fault.message:
        return fault.message
    return (
        f"Network error: the sandbox was told to fail this operation on IMSI {sim.imsi} "
        f"(setting it {target.value})."
    )


class FaultStore:
    """The faults in force, in the order they were set. Thread-safe: the control API's routes
    run in the thread pool, the worker on the event loop."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def all(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, sim: SimRef, operation: Operation) -> Fault | None:
        """The fault this operation meets, counted against its ``count`` (a fault whose count
        runs out is removed)."""
        with self._lock:
            index = matching(self._faults, sim, operation)
            if index is None:
                return None
            fault = self._faults[index]
            if fault.count is not None:
                if fault.count <= 1:
                    del self._faults[index]
                else:
                    self._faults[index] = replace(fault, count=fault.count - 1)
            return fault


class FaultyNetwork:
    """A network adapter that meets the sandbox's faults before it asks ``inner``."""

    def __init__(self, inner: NetworkAdapter, faults: FaultStore) -> None:
        self._inner = inner
        self._faults = faults

    async def apply(self, sim: SimRef, operation: Operation, target: SimState) -> NetworkResult:
        fault = self._faults.take(sim, operation)
        if fault is None:
            return await self._inner.apply(sim, operation, target)
        if fault.kind is FaultKind.FAILURE:
            return NetworkResult(False, failure_message(fault, sim, target))
        if fault.kind is FaultKind.TIMEOUT:
            # What the worker reports when the network does not answer within its time limit,
            # without making the test wait for that limit.
            return NetworkResult(False, TIMEOUT_MESSAGE)
        await asyncio.sleep(fault.latency_ms / 1000)
        return await self._inner.apply(sim, operation, target)


class FaultyUsageNetwork(FaultyNetwork):
    """``FaultyNetwork`` over an adapter that also reports usage: its feed passes through (the
    sandbox's faults are about operations, not usage)."""

    def __init__(self, inner: UsageSourceAdapter, faults: FaultStore) -> None:
        super().__init__(inner, faults)
        self._source = inner

    async def feed_usage(self, report: ReportUsage) -> None:
        await self._source.feed_usage(report)


def with_faults(inner: NetworkAdapter, faults: FaultStore) -> NetworkAdapter:
    """``inner`` meeting the sandbox's faults, still a usage source when it is one."""
    if isinstance(inner, UsageSource):
        return FaultyUsageNetwork(inner, faults)
    return FaultyNetwork(inner, faults)
