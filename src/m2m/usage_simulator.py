"""The sandbox's network produces usage, so that an integrator sees usage grow, thresholds
approached and crossed, and months roll over (with the sandbox's clock moved forward).

Every quarter hour of the clock, each Active SIM of the sandbox uses data, and now and then
sends or receives an SMS or (SIMs with a voice plan) makes a call: a daily pattern (quiet at
night, busiest in the afternoon, UTC), each SIM's day scaled to its own daily data threshold (a
typical SIM uses 20 to 60% of it; one SIM in twelve is a heavy user at about 150%, so that it
crosses its daily threshold most days and its monthly one within three weeks). Deterministic:
the same seed, SIM and quarter hour always give the same record, so the sandbox is the same
for everyone and a test can rely on it.

Each quarter hour is counted as its own batch (``simulator:<seed>:<quarter hour>``): counted once
however often it is simulated, and a clock moved forward by a day is caught up quarter by
quarter (at most ``MAX_CATCH_UP`` back).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from m2m.usage import BYTES_PER_MB, Totals
from m2m.usage_records import UsageRecord

QUARTER_HOUR = 900
SLOTS_PER_DAY = 96
MAX_CATCH_UP = timedelta(days=31)
HEAVY_EVERY = 12  # one SIM in twelve is a heavy user
SMS_PER_DAY = 1.5
VOICE_MINUTES_PER_DAY = 2.0


@dataclass(frozen=True, slots=True)
class SimulatedSim:
    iccid: str
    daily_data_mb: int  # its daily data threshold (0: none; a default day is used)
    voice: bool  # whether it has a voice plan (a voice threshold)


def _weights() -> list[float]:
    """The share of a day's usage in each quarter hour: quiet at night, a peak mid-afternoon."""
    raw = [0.15 + math.sin(math.pi * ((slot / 4 - 3) % 24) / 24) ** 4 for slot in range(96)]
    total = sum(raw)
    return [weight / total for weight in raw]


_WEIGHTS = _weights()
DEFAULT_DAILY_MB = 20


def slot_of(moment: datetime) -> int:
    """The quarter hour a moment is in, counted from 1970 (UTC)."""
    return int(moment.timestamp()) // QUARTER_HOUR


def records_for(sims: Sequence[SimulatedSim], slot: int, seed: int) -> list[UsageRecord]:
    """What the SIMs used in quarter hour ``slot`` (only those that used something)."""
    start = datetime.fromtimestamp(slot * QUARTER_HOUR, UTC)
    weight = _WEIGHTS[slot % SLOTS_PER_DAY]
    found = []
    for sim in sims:
        rng = random.Random(_seed(seed, sim.iccid, slot))  # noqa: S311 - a simulation
        heavy = int(hashlib.sha256(sim.iccid.encode()).hexdigest(), 16) % HEAVY_EVERY == 0
        share = 1.5 if heavy else 0.2 + 0.4 * _sim_fraction(sim.iccid)
        daily_bytes = (sim.daily_data_mb or DEFAULT_DAILY_MB) * BYTES_PER_MB * share
        data = int(daily_bytes * weight * rng.uniform(0.5, 1.5))
        sms_out = int(rng.random() < SMS_PER_DAY * weight / 2)
        sms_in = int(rng.random() < SMS_PER_DAY * weight / 2)
        voice = 0
        if sim.voice and rng.random() < VOICE_MINUTES_PER_DAY * weight:
            voice = rng.randrange(20, 120)
        if data or sms_out or sms_in or voice:
            totals = Totals(
                data_up_bytes=data // 5,
                data_down_bytes=data - data // 5,
                sms_out=sms_out,
                sms_in=sms_in,
                voice_seconds=voice,
            )
            ended = start + timedelta(seconds=QUARTER_HOUR - 1)
            found.append(UsageRecord(sim.iccid, None, start, ended, totals))
    return found


def _seed(seed: int, iccid: str, slot: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{iccid}:{slot}".encode()).digest()[:8], "big")


def _sim_fraction(iccid: str) -> float:
    """A SIM's own place between its peers, stable from day to day (0 to 1)."""
    return int(hashlib.sha256(f"share:{iccid}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def slots_to_simulate(last_done: int | None, now: datetime) -> range:
    """The quarter hours to simulate: those after ``last_done`` that have ended by ``now``,
    at most ``MAX_CATCH_UP`` back (a sandbox started fresh begins with today's)."""
    current = slot_of(now)  # in progress: simulated once it has ended
    earliest = slot_of(now - MAX_CATCH_UP)
    if last_done is None:
        last_done = current - current % SLOTS_PER_DAY - 1  # today so far
    return range(max(last_done + 1, earliest), current)


def batch_id(seed: int, slot: int) -> str:
    return f"simulator:{seed}:{slot}"
