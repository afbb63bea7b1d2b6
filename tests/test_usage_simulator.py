"""The sandbox's usage: deterministic records with a daily pattern and heavy users, counted
quarter by quarter as the sandbox's clock moves, each quarter once, thresholds crossed as real
usage crosses them (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from m2m.clock import ManualClock
from m2m.sandbox_usage import SandboxUsage
from m2m.storage.tables import events, usage_batches, usage_daily
from m2m.usage_simulator import SimulatedSim, records_for, slot_of, slots_to_simulate

SIMS = [SimulatedSim(f"8932{n:016d}", 100, n % 4 == 0) for n in range(48)]
MIDNIGHT = datetime(2026, 12, 1, tzinfo=UTC)


def day_of_records(seed: int) -> list[int]:
    first = slot_of(MIDNIGHT)
    return [sum(r.totals.data_bytes for r in records_for(SIMS, first + n, seed)) for n in range(96)]


def test_the_same_seed_gives_the_same_usage_and_days_have_a_pattern() -> None:
    assert records_for(SIMS, 1000, 7) == records_for(SIMS, 1000, 7)
    assert records_for(SIMS, 1000, 7) != records_for(SIMS, 1000, 8)
    per_slot = day_of_records(7)
    night, afternoon = sum(per_slot[8:16]), sum(per_slot[56:64])  # 02-04h and 14-16h
    assert afternoon > 3 * night


def test_a_typical_sim_stays_under_its_daily_threshold_and_a_heavy_one_crosses_it() -> None:
    first = slot_of(MIDNIGHT)
    daily: dict[str, int] = {}
    for n in range(96):
        for record in records_for(SIMS, first + n, 7):
            daily[record.iccid or ""] = daily.get(record.iccid or "", 0) + record.totals.data_bytes
    over = [iccid for iccid, used in daily.items() if used >= 100 * 1_000_000]
    assert 0 < len(over) < len(SIMS) // 4


def test_slots_to_simulate_start_today_and_catch_up_at_most_a_month() -> None:
    now = MIDNIGHT + timedelta(hours=1, minutes=7)
    first = slots_to_simulate(None, now)
    assert (first.start, first.stop) == (slot_of(MIDNIGHT), slot_of(now))
    assert len(first) == 4  # 00:00, 00:15, 00:30, 00:45 have ended; 01:00 has not
    much_later = slots_to_simulate(first.stop - 1, now + timedelta(days=90))
    assert len(much_later) == 31 * 96


def test_the_sandbox_catches_up_its_clock_once_per_quarter(
    engine: Engine, clock: ManualClock, seeded: None
) -> None:
    usage = SandboxUsage(engine, clock, seed=7)
    usage.catch_up()
    with engine.connect() as conn:
        batches = conn.execute(select(func.count()).select_from(usage_batches)).scalar_one()
    clock.advance(2 * 86400)
    assert usage.catch_up() == 2 * 96
    assert usage.catch_up() == 0
    # A second simulator (another process) counts nothing twice.
    SandboxUsage(engine, clock, seed=7).catch_up()
    with engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(usage_batches)).scalar_one()
        days = conn.execute(select(func.count(usage_daily.c.day.distinct()))).scalar_one()
        crossings = conn.execute(
            select(func.count()).select_from(events).where(events.c.type.like("usage.%"))
        ).scalar_one()
    assert after - batches == 2 * 96
    assert days >= 2
    assert crossings > 0  # heavy users cross their daily data thresholds
