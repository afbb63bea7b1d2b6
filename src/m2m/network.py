"""The network adapter: the one place that talks to the network that provisions SIMs.

A real adapter implements ``NetworkAdapter.apply``; the worker calls it only when a state change is
needed, and at least once per change (a worker that dies after the call but before recording the
outcome leaves the item to another worker, which calls again), so ``apply`` must be idempotent:
"make this SIM Deactivated", not "toggle".

``Simulator`` is the default: configurable latency and failure rate, plus test SIMs whose
operations always fail, so that integrators can exercise their error paths.

An adapter may also report the network's usage (``UsageSource``): each worker runs its
``feed_usage`` and counts every batch it reports (``m2m.usage_feed``; docs/usage.md).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from m2m.identifiers import SimState
from m2m.lifecycle import Operation

# What an operation reports when the network does not answer in time (the worker's time limit).
TIMEOUT_MESSAGE = "Network error: the network did not answer in time."


@dataclass(frozen=True, slots=True)
class SimRef:
    iccid: str
    imsi: str
    msisdn: str
    state: SimState


@dataclass(frozen=True, slots=True)
class NetworkResult:
    ok: bool
    error: str | None = None


class NetworkAdapter(Protocol):
    async def apply(self, sim: SimRef, operation: Operation, target: SimState) -> NetworkResult:
        """Bring ``sim`` to ``target`` on the network; idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class UsageReceipt:
    """What became of a batch of usage records an adapter reported."""

    counted: int  # records counted by this report
    already_counted: int  # records of a batch id counted before (reported again): not again
    # (record's index, or ``BATCH`` for the batch itself, what is wrong): with any, nothing of
    # the batch was counted; correct and report it again.
    problems: tuple[tuple[int, str], ...] = ()


BATCH = -1  # a problem of the batch as a whole (its id), not of one of its records


# ``await report(batch_id, records)``: each record a mapping with the fields of the usage CSV
# (docs/usage.md: "iccid" or "imsi", "start", "end", the counters, "network", "country"),
# times as datetimes or RFC 3339 text. The batch is counted in one transaction, or not at all.
ReportUsage = Callable[[str, Sequence[Mapping[str, object]]], Awaitable[UsageReceipt]]


@runtime_checkable
class UsageSource(Protocol):
    async def feed_usage(self, report: ReportUsage) -> None:
        """Report the network's usage for as long as the worker runs (it is cancelled when the
        worker stops): await ``report`` with each batch, under an id unique to the batch (the
        mediation's own), and acknowledge it upstream only once ``report`` has returned. A
        batch reported again under its id (after a crash, or by another worker running the same
        feed) is not counted twice. Should it raise, it is started again a little later."""
        ...


class UsageSourceAdapter(NetworkAdapter, UsageSource, Protocol):
    """An adapter that also reports usage."""


class Simulator:
    def __init__(
        self,
        *,
        latency_seconds: float = 0.0,
        failure_rate: float = 0.0,
        failing_msisdns: Collection[str] = (),
        rng: random.Random | None = None,
    ) -> None:
        self.latency_seconds = latency_seconds
        self.failure_rate = failure_rate
        self.failing_msisdns = frozenset(failing_msisdns)
        self._rng = rng or random.Random()  # noqa: S311 - simulation, not security

    async def apply(self, sim: SimRef, operation: Operation, target: SimState) -> NetworkResult:
        if self.latency_seconds > 0:
            await asyncio.sleep(self.latency_seconds * self._rng.uniform(0.5, 1.5))
        if sim.msisdn in self.failing_msisdns:
            return NetworkResult(
                False,
                f"Network error: the HLR rejected the {operation.value} of IMSI {sim.imsi} "
                "(error 0x0B, subscriber data locked). This is a test SIM that always fails.",
            )
        if self.failure_rate and self._rng.random() < self.failure_rate:
            return NetworkResult(
                False,
                f"Network error: provisioning gateway timed out while setting the SIM "
                f"{target.value}; retry the request.",
            )
        return NetworkResult(True)
