"""What the platform sent, kept in memory for the sandbox's ``GET /sandbox/deliveries``: each
attempt's URL, headers and body as they went out, and the receiver's answer, so that a test can
assert on them without running a receiver.

The tables keep the message (``callback_deliveries.payload``) and each attempt's status, but not
the headers it went out with (signatures, the request's ``x-callback-token``): the sender hands
every attempt to a ``SentLog`` when it has one, which only the sandbox gives it. The log is
bounded (the oldest entries go first) and lives in the process that sends, which in
``m2m serve --sandbox`` is the one serving the control API.

Events (the subscriptions of issue 14's second half) go through the same log: their sender
calls ``SentLog.record`` with ``kind="event"`` and the event's id as ``reference``.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Kind = Literal["callback", "event"]
DEFAULT_CAPACITY = 10_000


@dataclass(frozen=True, slots=True)
class SentMessage:
    sequence: int  # this log's order, the ``after`` cursor of its readers
    kind: Kind
    reference: str | None  # a callback's TrackingNumber, an event's id
    attempted_at: datetime
    url: str | None
    headers: Mapping[str, str]
    body: Any  # the JSON document sent
    status_code: int | None  # the receiver's answer, None when there was none
    error: str | None  # why the attempt failed (no answer, a non-2xx answer, refused)
    delivered: bool


class SentLog:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._messages: deque[SentMessage] = deque(maxlen=capacity)
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()

    def record(
        self,
        *,
        kind: Kind,
        reference: str | None,
        attempted_at: datetime,
        url: str | None,
        headers: Mapping[str, str],
        body: Any,
        status_code: int | None,
        error: str | None,
        delivered: bool,
    ) -> None:
        with self._lock:
            self._messages.append(
                SentMessage(
                    next(self._sequence),
                    kind,
                    reference,
                    attempted_at,
                    url,
                    dict(headers),
                    body,
                    status_code,
                    error,
                    delivered,
                )
            )

    def read(self, *, reference: str | None = None, after: int = 0) -> list[SentMessage]:
        """Messages after the ``after``-th (by sequence), of one reference if given."""
        with self._lock:
            return [
                message
                for message in self._messages
                if message.sequence > after and reference in (None, message.reference)
            ]

    def clear(self) -> None:
        """Forget what was sent; sequence numbers keep counting, so a reader's cursor stays
        valid (it simply sees nothing older)."""
        with self._lock:
            self._messages.clear()
