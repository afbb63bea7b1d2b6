"""What an SDK operation asks its transport to do, and how a transport resumes it.

An operation is a generator (an ``Exchange``): it yields ``Send`` or ``Sleep``, and is resumed with
the ``httpx.Response`` (or has the transport error thrown into it) or with None after a sleep.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Send:
    """An HTTP request for the transport to send; it answers with the ``httpx.Response``."""

    method: str
    path: str
    # a list of pairs, or a mapping whose list values are a repeated parameter
    params: Mapping[str, str | list[str]] | list[tuple[str, str]] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None  # HTTP Basic

    def httpx_arguments(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "json": self.json,
            "data": self.data,
            "headers": self.headers,
            "auth": self.auth,
        }


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


Action = Send | Sleep
Exchange = Generator[Action, Any, T]


def step(
    exchange: Exchange[T], outcome: Any, error: Exception | None
) -> tuple[Action | None, T | None]:
    """Resume ``exchange`` with an outcome (or throw the transport error into it).

    Returns its next action, or ``(None, result)`` once it has finished.
    """
    try:
        action = exchange.throw(error) if error is not None else exchange.send(outcome)
    except StopIteration as stop:
        return None, stop.value
    return action, None
