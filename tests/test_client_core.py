"""The SDK's core without a network: its exchanges are driven by hand with prepared answers.

This is where decisions that a real server will not easily provoke are checked: which failures
are retried, and what a bulk submission that fails half-way reports.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from m2m.client import Device, InvalidRequestError, PartialSubmissionError, WaitTimeout
from m2m.client.actions import Exchange, Send, Sleep, step
from m2m.client.core import ClientCore
from m2m.client.retries import retry_delay

CONNECT = httpx.ConnectError("refused")
READ_TIMEOUT = httpx.ReadTimeout("no answer")


@pytest.mark.parametrize(
    ("repeatable", "failure", "retried"),
    [
        (False, CONNECT, True),  # nothing reached the server: always safe
        (False, httpx.ConnectTimeout("slow"), True),
        (False, READ_TIMEOUT, False),  # the server may have accepted it
        (False, httpx.RemoteProtocolError("closed"), False),
        (False, 503, False),
        (False, 409, False),
        (True, READ_TIMEOUT, True),
        (True, 502, True),
        (True, 503, True),
        (True, 504, True),
        (True, 409, True),  # an idempotent write's first attempt still running: ask again
        (True, 500, False),  # a bug, not a hiccup
        (True, 429, False),  # too many failed logins: retrying makes it worse
    ],
)
def test_what_is_retried(repeatable: bool, failure: Exception | int, retried: bool) -> None:
    if isinstance(failure, int):
        delay = retry_delay(0, 2, repeatable=repeatable, status=failure)
    else:
        delay = retry_delay(0, 2, repeatable=repeatable, error=failure)
    assert (delay is not None) == retried


def test_retries_stop_and_back_off() -> None:
    delays = [retry_delay(n, 3, repeatable=True, error=CONNECT) for n in range(4)]
    assert delays[3] is None
    assert all(d is not None and d > 0 for d in delays[:3])
    assert retry_delay(0, 0, repeatable=True, error=CONNECT) is None


def drive(exchange: Exchange[Any], answers: list[httpx.Response | Exception]) -> list[Send]:
    """Run ``exchange`` to its end, answering its requests in order; the requests it sent."""
    sent: list[Send] = []
    outcome: Any = None
    error: Exception | None = None
    while True:
        action, _ = step(exchange, outcome, error)
        if action is None:
            return sent
        outcome, error = None, None
        if isinstance(action, Sleep):
            continue
        sent.append(action)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            error = answer
        else:
            outcome = answer


def core() -> ClientCore:
    return ClientCore(
        client_id=None,
        client_secret=None,
        api_key="k",
        token="permanent",
        max_retries=2,
        clock=lambda: 0.0,
    )


def accepted(number: str) -> httpx.Response:
    return httpx.Response(202, json={"TrackingNumber": number})


def test_a_bulk_submission_that_fails_half_way_says_what_was_accepted() -> None:
    devices = [Device.msisdn(str(32470000001 + n)) for n in range(4)]
    batches: list[int] = []
    exchange = core().submit_all(
        "deactivation", devices, "t", 4, lambda _n, count: batches.append(count)
    )
    too_many = httpx.Response(413, json={"error": "too_many_devices", "error_description": "4"})
    refused = httpx.Response(422, json={"error": "invalid_request", "error_description": "no"})
    with pytest.raises(PartialSubmissionError) as raised:
        drive(exchange, [too_many, accepted("A"), refused])
    assert raised.value.tracking_numbers == ["A"]
    assert raised.value.devices_accepted == 2
    assert isinstance(raised.value.cause, InvalidRequestError)
    assert batches == [2]


def test_a_lifecycle_request_is_sent_again_after_a_timeout_with_the_same_key() -> None:
    """It carries an Idempotency-Key: a server that honours it answers the repeat with the
    first answer, so the timed-out request cannot be accepted twice."""
    exchange = core().submit("activation", [Device.msisdn("32470000051")], "t")
    sent = drive(exchange, [READ_TIMEOUT, accepted("A")])
    assert len(sent) == 2
    assert sent[0].headers["Idempotency-Key"] == sent[1].headers["Idempotency-Key"]
    given = core().submit("activation", [Device.msisdn("32470000051")], "t", "mine")
    assert drive(given, [accepted("A")])[0].headers["Idempotency-Key"] == "mine"


def test_a_lifecycle_request_that_could_not_connect_is_sent_again() -> None:
    exchange = core().submit("activation", [Device.msisdn("32470000051")], "t")
    sent = drive(exchange, [CONNECT, accepted("A")])
    assert len(sent) == 2
    assert sent[0].json == [{"identifier": "32470000051", "identifierType": "MSISDN"}]
    assert sent[0].headers["x-callback-token"] == "t"


def test_wait_gives_up_after_its_timeout_with_what_it_saw() -> None:
    ticks = iter(range(100))
    waiting = ClientCore(
        client_id=None,
        client_secret=None,
        api_key="k",
        token="permanent",
        max_retries=0,
        clock=lambda: float(next(ticks)),
    )
    unfinished = {
        "trackingNumber": "A",
        "operation": "activation",
        "acceptedAt": "2026-01-01T00:00:00Z",
        "finishedAt": None,
        "deviceCount": 1,
        "devices": [{"identifier": "1", "identifierType": "MSISDN", "status": "pending"}],
    }
    exchange = waiting.wait(["A"], poll_seconds=1, timeout=3, on_poll=None)
    with pytest.raises(WaitTimeout) as raised:
        drive(exchange, [httpx.Response(200, json=unfinished) for _ in range(10)])
    assert [s.finished for s in raised.value.statuses] == [False]
