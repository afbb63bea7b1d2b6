"""The network simulator: latency, random failures and the test SIMs that always fail."""

from __future__ import annotations

import asyncio
import random
import time

from m2m.identifiers import SimState
from m2m.lifecycle import Operation
from m2m.network import SimRef, Simulator
from m2m.settings import SANDBOX_FAILING_MSISDNS


def sim(msisdn: str) -> SimRef:
    return SimRef("8932017000000000014", "206011000000001", msisdn, SimState.ACTIVE)


def apply(simulator: Simulator, msisdn: str) -> tuple[bool, str | None]:
    result = asyncio.run(simulator.apply(sim(msisdn), Operation.DEACTIVATION, SimState.DEACTIVATED))
    return result.ok, result.error


def test_ordinary_sims_succeed_and_test_sims_always_fail() -> None:
    simulator = Simulator(failing_msisdns=SANDBOX_FAILING_MSISDNS)
    assert apply(simulator, "32470000001") == (True, None)
    for msisdn in SANDBOX_FAILING_MSISDNS:
        ok, error = apply(simulator, msisdn)
        assert not ok
        assert error is not None
        assert "Network error" in error


def test_failure_rate_is_honoured() -> None:
    simulator = Simulator(failure_rate=0.3, rng=random.Random(3))
    outcomes = [apply(simulator, "32470000001")[0] for _ in range(400)]
    assert 0.2 < outcomes.count(False) / len(outcomes) < 0.4


def test_latency_is_simulated() -> None:
    simulator = Simulator(latency_seconds=0.05, rng=random.Random(1))
    started = time.perf_counter()
    apply(simulator, "32470000001")
    assert time.perf_counter() - started >= 0.025  # 0.5x to 1.5x the mean
