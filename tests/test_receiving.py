"""Checking and parsing status messages on the receiver's side; ``m2m listen``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestServer
from standardwebhooks.webhooks import Webhook

from m2m.callbacks import signing_secret
from m2m.callbacks.message import status_message
from m2m.cli.listen import make_receiver
from m2m.client.receiving import CallbackVerifier, InvalidCallback
from tests.support.servers import M2M_BIN, free_port

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
    assert message.device.identifier_type == "ICCID"
    assert message.device.identifier == "8932017000000000014"
    assert message.succeeded
    assert message.messages == []
    assert message.message_id == "msg-1"


def wsgi_environ(headers: dict[str, str]) -> dict[str, object]:
    environ: dict[str, object] = {"REQUEST_METHOD": "POST", "wsgi.input": None}
    environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    return environ


@pytest.mark.parametrize(
    "shape",
    [
        lambda h: h,  # a dict, Flask's or Starlette's headers
        lambda h: {k.title(): v for k, v in h.items()},  # any case
        lambda h: [(k.encode(), v.encode()) for k, v in h.items()],  # ASGI scope["headers"]
        wsgi_environ,  # a WSGI environ
    ],
    ids=["mapping", "title-case", "asgi", "wsgi"],
)
def test_headers_from_any_framework(shape: Callable[[dict[str, str]], Any]) -> None:
    verifier = CallbackVerifier(signing_secret=SECRET, callback_token="encotest")
    message = verifier.verify(BODY, shape(signed_headers()))
    assert message.message_id == "msg-1"


def test_the_message_round_trips_to_the_documented_json() -> None:
    message = CallbackVerifier().verify(BODY, {})
    assert message.model_dump(by_alias=True) == json.loads(BODY)


def unsigned(_body: bytes) -> dict[str, str]:
    return {"x-callback-token": "encotest"}


def signed_for_another_token(body: bytes) -> dict[str, str]:
    return signed_headers(body, token="other")


def signed_for_the_original(_body: bytes) -> dict[str, str]:
    return signed_headers(BODY)


# Headers are made when the test runs, not when it is collected: a signature's timestamp is only
# accepted for five minutes, and a full run of the suite takes about that long.
@pytest.mark.parametrize(
    ("body", "make_headers", "reason"),
    [
        (BODY, signed_for_another_token, "x-callback-token"),
        (BODY.replace(b"Success", b"Failure"), signed_for_the_original, "signature"),
        (BODY, unsigned, "signature"),
        (b"[]", signed_headers, "not a status message"),
        (b"{", signed_headers, "not a status message"),
        (BODY.replace(b'"ICCID"', b'"EID"'), signed_headers, "device.identifierType"),
    ],
)
def test_forged_or_malformed_messages_are_refused(
    body: bytes, make_headers: Callable[[bytes], dict[str, str]], reason: str
) -> None:
    verifier = CallbackVerifier(signing_secret=SECRET, callback_token="encotest")
    with pytest.raises(InvalidCallback, match=reason):
        verifier.verify(body, make_headers(body))


def run_listen(tmp_path: Path) -> tuple[httpx.Response, httpx.Response, str, str]:
    """``m2m listen`` in its own process: one good and one forged message; (answers, out, err)."""
    port = free_port()
    out, err = tmp_path / "listen.out", tmp_path / "listen.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [
                M2M_BIN,
                "listen",
                "--port",
                str(port),
                "--callback-token",
                "encotest",
                "--secret",
                SECRET,
            ],
            stdout=stdout,
            stderr=stderr,
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
    return good, bad, out.read_text(), err.read_text()


def test_listen_prints_messages_and_refuses_wrong_tokens(tmp_path: Path) -> None:
    good, bad, printed, errors = run_listen(tmp_path)
    assert good.status_code == 204
    assert bad.status_code == 401
    assert printed.strip() == (
        "717ccaa0-1234-5678-1234-9444e657ca96  ICCID 8932017000000000014  Success"
    )
    assert "refused /callback: wrong or missing x-callback-token" in errors


def test_listen_json_prints_one_document_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The receiver app of ``m2m listen --json``, served in-process on loopback."""
    verifier = CallbackVerifier(signing_secret=SECRET, callback_token="encotest")

    async def post_twice() -> list[int]:
        async with TestServer(make_receiver(verifier, as_json=True)) as server:
            url = str(server.make_url("/callback"))
            async with httpx.AsyncClient() as http:
                good = await http.post(url, content=BODY, headers=signed_headers())
                bad = await http.post(url, content=BODY, headers=signed_headers(token="x"))
        return [good.status_code, bad.status_code]

    assert asyncio.run(post_twice()) == [204, 401]
    [line] = capsys.readouterr().out.splitlines()  # the refusal goes to stderr
    assert json.loads(line) == {**json.loads(BODY), "webhookId": "msg-1"}
