"""One attempt of the sender against real sockets on loopback: how it judges the outcome and
what it tells the customer when it fails."""

from __future__ import annotations

import asyncio
import socket

from m2m.callbacks.outbound import AddressPolicy
from m2m.callbacks.poster import CallbackPoster
from m2m.callbacks.sender import CallbackSender
from m2m.clock import ManualClock
from m2m.settings import DEFAULT_RETRY_SCHEDULE
from m2m.storage.outbox import AttemptRecord, DueDelivery


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once it is closed


def _attempt(url: str) -> AttemptRecord:
    delivery = DueDelivery(
        id="00000000-0000-4000-8000-000000000001",
        account_id=1,
        payload={"trackingNumber": "t"},
        attempts=0,
        callback_token="encotest",
        url=url,
        headers={},
        signing_key_version=1,
        signing_key_rotated_at=None,
    )

    async def send() -> AttemptRecord:
        poster = CallbackPoster(
            AddressPolicy.from_strings(True, []), timeout_seconds=5, require_https=False
        )
        async with poster:
            sender = CallbackSender(
                poster,
                secret_key="k" * 40,
                clock=ManualClock(),
                retry_schedule=DEFAULT_RETRY_SCHEDULE,
                timeout_seconds=5,
            )
            return await sender.send(delivery)

    return asyncio.run(send())


def test_a_refused_connection_is_named_plainly_without_the_http_clients_tls_setting() -> None:
    port = _closed_port()
    record = _attempt(f"http://127.0.0.1:{port}/callback")
    assert not record.delivered
    assert record.next_attempt_at is not None  # retried later
    assert (
        record.error == f"connection failed: cannot connect to 127.0.0.1:{port}: Connection refused"
    )
    assert "ssl" not in (record.error or "")
