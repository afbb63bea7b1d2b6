"""Time as a dependency, so token expiry and retry schedules can be tested without sleeping."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to: for tests and simulations.

    It starts at the real current time, so timestamps it produces (webhook signatures, say) are
    acceptable to receivers that check them against their own clocks."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


class SandboxClock:
    """The sandbox's clock: ``base`` (real time) moved by an offset a test can change through
    the control API, so that token expiry, retry schedules, breaker waits and lifecycle
    timestamps can be reached without waiting. It keeps running after a move: a token issued
    at the moved time expires an hour of real time later, as it would in production.

    Only the sandbox builds one; elsewhere the services hold the base clock itself (no offset
    to add on every read)."""

    def __init__(self, base: Clock) -> None:
        self._base = base
        self._offset = timedelta(0)

    @property
    def offset(self) -> timedelta:
        return self._offset

    def now(self) -> datetime:
        return self._base.now() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += timedelta(seconds=seconds)

    def set(self, moment: datetime) -> None:
        """Make ``now()`` answer ``moment`` (aware), then keep running from there."""
        self._offset = moment - self._base.now()

    def realtime(self) -> None:
        self._offset = timedelta(0)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\+?((?:\d+(?:\.\d+)?[smhdw])+)")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float | None:
    """Seconds of ``"90s"``, ``"15m"``, ``"1h"``, ``"31d"``, ``"2w"``, ``"1d12h"`` (an optional
    leading ``+``); None if ``text`` is not one."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        return None
    return sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(match.group(1)))
