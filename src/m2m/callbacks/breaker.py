"""The circuit breaker of a callback URL: when a receiver stops answering, its messages wait
without holding delivery slots, and one probe at a time tests whether it is back. Pure.

One breaker per account's callback configuration (an account has one URL, its endpoint); its
state lives in that row (``storage.callback_configs.BreakerState``) so that every worker sees it,
and saving a URL resets it. ``callbacks.dispatch`` reads it when claiming and applies ``judged``
when recording.

- **What counts.** An attempt is *unhealthy* when the receiver did not answer usefully: a timeout
  (connecting or waiting for the answer), a failed connection, or an answer 5xx, 408 or 429
  (overloaded, or asking us to slow down). Any other answer is *healthy*: a slow receiver that
  answers 2xx within the timeout is served as usual, and a 3xx or 4xx is the message's problem,
  not the endpoint's (those messages follow the retry schedule). An attempt that was never sent
  (address refused, invalid URL, no URL) says nothing about the endpoint.
- **Opening.** ``threshold`` consecutive unhealthy attempts open the breaker for a cool-down:
  the retry schedule's delay for the n-th opening in a row (10 s, 30 s, 1 min ... by default),
  at most ``max_cooldown``. While it is open none of the account's messages is claimed, old or
  new: they hold no slot, cost no claim, and spend none of their retry budget.
- **Probing.** When the cool-down ends one message goes out as the probe; the claim takes the
  probe slot with a conditional UPDATE, so one worker of all gets it. The probe's lease is the
  delivery lease: a worker that dies with it leaves the slot to another probe.
- **Closing.** A healthy answer, the probe's or a late one's, closes the breaker and makes the
  account's waiting messages due at once. The probe failing re-opens it with the next cool-down.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

from m2m.storage.callback_configs import BreakerState


class Slot(Enum):
    """What the claim may take from an account."""

    CLOSED = "closed"  # its share, as any account
    PROBE = "probe"  # one message, the probe
    OPEN = "open"  # nothing


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    threshold: int  # consecutive unhealthy attempts that open it; 0: never
    schedule: tuple[float, ...]  # the callback retry schedule, seconds
    max_cooldown: float  # seconds

    def cooldown(self, trips: int) -> timedelta:
        """How long the ``trips``-th opening in a row lasts."""
        if not self.schedule:
            return timedelta(seconds=self.max_cooldown)
        step = self.schedule[min(max(trips, 1), len(self.schedule)) - 1]
        return timedelta(seconds=min(step, self.max_cooldown))


def healthy(status_code: int | None, *, unreachable: bool) -> bool | None:
    """How an attempt reflects on the endpoint: True healthy, False unhealthy, None neither
    (never sent). ``unreachable``: it timed out or the connection failed."""
    if unreachable:
        return False
    if status_code is None:
        return None
    return not (status_code >= 500 or status_code in (408, 429))


def slot(state: BreakerState, now: datetime) -> Slot:
    if state.open_until is None:
        return Slot.CLOSED
    return Slot.OPEN if state.open_until > now else Slot.PROBE


@dataclass(frozen=True, slots=True)
class Judged:
    state: BreakerState
    opened: bool  # it opened, or re-opened after a failed probe
    closed: bool  # it was open and is closed: the account's waiting messages are due now


def judged(
    start: BreakerState,
    outcomes: Iterable[tuple[str, bool]],
    now: datetime,
    policy: BreakerPolicy,
) -> Judged:
    """The breaker after ``outcomes`` (delivery id, healthy), in the order they finished."""
    state = start
    for delivery_id, ok in outcomes:
        if ok:
            state = BreakerState()
            continue
        failures = state.failures + 1
        probe_failed = state.probe_id is not None and delivery_id == state.probe_id
        if probe_failed or (
            state.open_until is None and policy.threshold and failures >= policy.threshold
        ):
            trips = state.trips + 1
            state = BreakerState(failures, trips, now + policy.cooldown(trips), None)
        else:
            # While it is open, late answers of the messages that were in flight only count.
            state = replace(state, failures=failures)
    return Judged(
        state,
        opened=state.open_until is not None
        and (start.open_until is None or state.trips > start.trips),
        closed=start.open_until is not None and state.open_until is None,
    )
