"""Which fault an operation meets, and how "fail the next N" counts down (pure, in memory)."""

from __future__ import annotations

import asyncio

from m2m.identifiers import SimState
from m2m.lifecycle import Operation
from m2m.network import NetworkResult, SimRef
from m2m.network_faults import Fault, FaultKind, FaultStore, FaultyNetwork, matching

SIM = SimRef("89320170000000000011", "206011000000001", "32470000001", SimState.ACTIVE)
OTHER = SimRef("89320170000000000029", "206011000000002", "32470000002", SimState.ACTIVE)


def test_a_fault_names_its_sim_by_any_identifier_and_its_operation() -> None:
    for identifier in (SIM.iccid, SIM.imsi, SIM.msisdn):
        fault = Fault(identifier, "deactivation", FaultKind.FAILURE)
        assert matching([fault], SIM, Operation.DEACTIVATION) == 0
        assert matching([fault], SIM, Operation.TERMINATION) is None
        assert matching([fault], OTHER, Operation.DEACTIVATION) is None
    wildcard = Fault(SIM.msisdn, "*", FaultKind.TIMEOUT)
    assert all(matching([wildcard], SIM, operation) == 0 for operation in Operation)


def test_the_first_fault_set_that_applies_wins() -> None:
    broad = Fault(SIM.msisdn, "*", FaultKind.TIMEOUT)
    specific = Fault(SIM.msisdn, "activation", FaultKind.FAILURE)
    assert matching([specific, broad], SIM, Operation.ACTIVATION) == 0
    assert matching([specific, broad], SIM, Operation.DEACTIVATION) == 1


def test_fail_the_next_n_counts_down_then_goes() -> None:
    store = FaultStore()
    store.add(Fault(SIM.msisdn, "*", FaultKind.FAILURE, count=2))
    assert store.take(SIM, Operation.DEACTIVATION) is not None
    assert [f.count for f in store.all()] == [1]
    assert store.take(SIM, Operation.DEACTIVATION) is not None
    assert store.all() == []
    assert store.take(SIM, Operation.DEACTIVATION) is None


class Recording:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def apply(self, sim: SimRef, operation: Operation, target: SimState) -> NetworkResult:
        self.calls.append(sim.msisdn)
        return NetworkResult(True)


def test_the_faulty_network_asks_the_real_one_only_without_a_failure() -> None:
    inner = Recording()
    store = FaultStore()
    network = FaultyNetwork(inner, store)
    store.add(Fault(SIM.msisdn, "*", FaultKind.FAILURE, message="no"))
    store.add(Fault(OTHER.msisdn, "*", FaultKind.LATENCY, latency_ms=1))
    failed = asyncio.run(network.apply(SIM, Operation.DEACTIVATION, SimState.DEACTIVATED))
    assert failed == NetworkResult(False, "no")
    slowed = asyncio.run(network.apply(OTHER, Operation.DEACTIVATION, SimState.DEACTIVATED))
    assert slowed == NetworkResult(True)
    assert inner.calls == [OTHER.msisdn]
