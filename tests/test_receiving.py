"""Checking and parsing status messages on the receiver's side; ``m2m listen``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from m2m.callbacks import signing_secret, status_message
from m2m.receiving import CallbackVerifier, InvalidCallback
from tests.conftest import free_port

SECRET = signing_secret("k" * 40, 1, 1)
BODY = json.dumps(
    status_message(
        "717ccaa0-1234-5678-1234-9444e657ca96", "8932017000000000014", "ICCID", "Success", []
    )
).encode()


def signed_headers(body: bytes = BODY, token: str = "encotest") -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "x-callback-token": token,
        "webhook-id": "msg-1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign("msg-1", now, body.decode()),
    }


def test_a_genuine_message_is_parsed() -> None:
    verifier = CallbackVerifier(signing_secret=SECRET, callback_token="encotest")
    message = verifier.verify(BODY, signed_headers())
    assert message.tracking_number == "717ccaa0-1234-5678-1234-9444e657ca96"
    assert message.identifier_type == "ICCID"
    assert message.result_status == "Success"
    assert message.message_id == "msg-1"


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (BODY, signed_headers(token="other"), "x-callback-token"),
        (BODY.replace(b"Success", b"Failure"), signed_headers(), "signature"),
        (BODY, {"x-callback-token": "encotest"}, "signature"),
        (b"[]", signed_headers(b"[]"), "not a status message"),
    ],
)
def test_forged_or_malformed_messages_are_refused(
    body: bytes, headers: dict[str, str], reason: str
) -> None:
    verifier = CallbackVerifier(signing_secret=SECRET, callback_token="encotest")
    with pytest.raises(InvalidCallback, match=reason):
        verifier.verify(body, headers)


def test_listen_prints_messages_and_refuses_wrong_tokens(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "listen.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "m2m"),
                "listen",
                "--port",
                str(port),
                "--callback-token",
                "encotest",
                "--secret",
                SECRET,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/callback"
        deadline = time.monotonic() + 30
        while True:
            try:
                good = httpx.post(url, content=BODY, headers=signed_headers())
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                assert process.poll() is None
                time.sleep(0.1)
        bad = httpx.post(url, content=BODY, headers=signed_headers(token="nope"))
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert good.status_code == 204
    assert bad.status_code == 401
    printed = log.read_text()
    assert "717ccaa0-1234-5678-1234-9444e657ca96" in printed
    assert "Success" in printed
    assert "refused" in printed
