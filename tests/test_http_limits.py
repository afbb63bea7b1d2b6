"""Bodies bounded per route while they stream: the middleware on its own, then a real server
process streaming a body far over the limit, with and without credentials."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from m2m.console.web import MAX_FORM_BYTES
from m2m.http_limits import BodyLimit, BodyLimits
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET
from tests.support.server_process import ServerProcess, chunked, serving, stream

MB = 1 << 20


# --- the middleware -------------------------------------------------------------------------


class Reader:
    """An app reading its whole body, then answering how many bytes it got."""

    def __init__(self) -> None:
        self.read = 0
        self.saw_disconnect = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.saw_disconnect = True
                break
            self.read += len(message["body"])
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(self.read).encode()})


def _call(
    app: Any, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[list[Message], int]:
    """Run one request through ``BodyLimits``; the messages sent, and the chunks pulled."""
    guarded = BodyLimits(
        app, [("/small", BodyLimit(10)), ("/small/big", BodyLimit(100))], BodyLimit(50)
    )
    pulled = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        body = chunks[pulled - 1]
        return {"type": "http.request", "body": body, "more_body": pulled < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "headers": headers, "method": "POST"}
    asyncio.run(guarded(scope, receive, send))
    return sent, pulled


CHUNKED = [(b"transfer-encoding", b"chunked")]


def test_a_body_within_its_limit_reaches_the_app_whole() -> None:
    reader = Reader()
    sent, _ = _call(reader, "/small", [b"12345", b"67890"], CHUNKED)
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"10"
    assert (b"connection", b"close") not in sent[0]["headers"]


def test_a_streamed_body_over_its_limit_is_refused_before_the_rest_is_read() -> None:
    reader = Reader()
    chunks = [b"x" * 8, b"x" * 8, b"x" * 8, b"x" * 8]
    sent, pulled = _call(reader, "/small", chunks, CHUNKED)
    assert pulled == 2  # the chunk that passed the limit was the last one read
    assert reader.saw_disconnect  # the app is told the client is gone, and stops
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]
    assert sent[1]["body"] == (
        b'{"error":"body_too_large","error_description":'
        b'"The body is larger than 10 bytes, the most this address accepts."}'
    )


def test_a_declared_length_over_the_limit_is_refused_without_reading() -> None:
    reader = Reader()
    sent, pulled = _call(reader, "/small", [b""], [(b"content-length", b"11")])
    assert pulled == 0
    assert reader.read == 0
    assert sent[0]["status"] == 413


def test_the_longest_matching_prefix_sets_the_limit() -> None:
    body = [b"x" * 60]
    assert _call(Reader(), "/small/big", body, CHUNKED)[0][0]["status"] == 200
    assert _call(Reader(), "/small/other", body, CHUNKED)[0][0]["status"] == 413
    assert _call(Reader(), "/smaller", body, CHUNKED)[0][0]["status"] == 413  # the default: 50
    assert _call(Reader(), "/elsewhere", [b"x" * 40], CHUNKED)[0][0]["status"] == 200


def test_an_answer_given_before_the_body_was_read_closes_the_connection() -> None:
    async def early(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent, pulled = _call(early, "/small", [b"x"], [(b"content-length", b"1")])
    assert pulled == 0
    assert (b"connection", b"close") in sent[0]["headers"]
    # A request without a body keeps its connection.
    sent, _ = _call(early, "/small", [b""], [])
    assert (b"connection", b"close") not in sent[0]["headers"]


def test_the_api_answers_413_in_its_error_shape(api: Any) -> None:
    response = api.post("/token", content=b"a=" + b"x" * 9000, headers={"Content-Type": "x"})
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert response.headers["x-content-type-options"] == "nosniff"


# --- a real server, a body far over the limit ---------------------------------------------


BODY = 100 * MB  # far over every limit (the largest, 10,000 devices, is 2.5 MB)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with serving(tmp_path) as running:
        yield running


def _credentials(server: ServerProcess) -> str:
    token = httpx.post(
        f"{server.base_url}/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),
    ).json()["access_token"]
    return f"Authorization: Bearer {token}\r\nx-api-key: {API_KEY}\r\n"


def _post(path: str, headers: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: m2m.test\r\n{headers}"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()


def test_a_body_without_credentials_is_answered_before_it_is_sent(server: ServerProcess) -> None:
    before = server.peak_memory()
    exchange = stream(
        server.port, _post("/m2m/1.0.0/configure/callback"), chunked(b'{"url":"', BODY)
    )
    assert exchange.status == 401
    assert b"missing_token" in exchange.body
    # Answered before the body was read: what was sent is what the sockets' buffers took.
    assert exchange.sent < BODY / 10
    assert server.peak_memory() - before < BODY / 4


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/m2m/1.0.0/configure/callback", b"body_too_large"),
        ("/m2m/1.0.0/requests/activation", b"too_many_devices"),
    ],
)
def test_a_body_with_credentials_is_refused_while_it_streams(
    server: ServerProcess, path: str, code: bytes
) -> None:
    headers = _credentials(server) + "x-callback-token: t\r\n"
    before = server.peak_memory()
    exchange = stream(server.port, _post(path, headers), chunked(b'{"url":"', BODY))
    assert exchange.status == 413
    assert code in exchange.body
    assert exchange.sent < BODY / 10
    assert server.peak_memory() - before < BODY / 4


def test_a_declared_length_over_the_limit_is_answered_before_any_body(
    server: ServerProcess,
) -> None:
    head = (
        b"POST /token HTTP/1.1\r\nHost: m2m.test\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 300000000\r\n\r\n"
    )
    exchange = stream(server.port, head, iter(()))
    assert exchange.status == 413
    assert exchange.sent == 0


# --- the app, when the client is gone --------------------------------------------------------


def _run_app(app: Any, path: str, receive_messages: list[Message]) -> list[Message]:
    sent: list[Message] = []
    queue = list(receive_messages)

    async def receive() -> Message:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"m2m.test"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("m2m.test", 80),
    }
    asyncio.run(app(scope, receive, send))
    return sent


@pytest.mark.parametrize("path", ["/console/login", "/token", "/revoke"])
def test_a_client_gone_mid_form_is_no_error(
    app: Any, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = {"type": "http.request", "body": b"email=a%40b.c&pass", "more_body": True}
    with caplog.at_level(logging.INFO):
        _run_app(app, path, [first, {"type": "http.disconnect"}])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("left before" in r.getMessage() for r in caplog.records)


def test_a_body_cut_off_at_its_limit_is_no_error(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    chunk = {"type": "http.request", "body": b"x" * (MAX_FORM_BYTES // 2 + 1), "more_body": True}
    with caplog.at_level(logging.INFO):
        sent = _run_app(app, "/console/login", [chunk, chunk])
    assert sent[0]["status"] == 413
    assert len([m for m in sent if m["type"] == "http.response.start"]) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
