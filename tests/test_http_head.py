"""The request's head (request line and headers) bounded by the server ``m2m serve`` runs,
while it arrives: a real server process, raw bytes on a socket."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.protocol_server import protocol_server
from tests.support.server_process import ServerProcess, filler, serving, stream

MB = 1 << 20
MANY_HEADERS = b"".join(b"X-%d: %s\r\n" % (n, b"a" * 1000) for n in range(20))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(tmp_path_factory.mktemp("head")) as running:
        yield running


def test_a_url_over_8_kib_is_414_before_the_rest_arrives(server: ServerProcess) -> None:
    before = server.peak_memory()
    exchange = stream(server.port, b"GET /m2m/1.0.0/simcards?msisdn=", filler(100 * MB))
    assert exchange.status == 414
    assert exchange.body == (
        b'{"error":"url_too_long","error_description":"The URL is longer than 8192 bytes."}'
    )
    assert exchange.sent < 10 * MB
    assert server.peak_memory() - before < 25 * MB


def test_a_header_that_never_ends_is_431_before_the_rest_arrives(server: ServerProcess) -> None:
    before = server.peak_memory()
    head = b"GET /openapi.json HTTP/1.1\r\nHost: m2m.test\r\nX-Big: "
    exchange = stream(server.port, head, filler(100 * MB))
    assert exchange.status == 431
    assert b'"error":"headers_too_large"' in exchange.body
    assert exchange.sent < 10 * MB
    assert server.peak_memory() - before < 25 * MB


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /openapi.json?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: m2m.test\r\n\r\n", 414),
        # Many headers, each small: the head as a whole is counted.
        (b"GET /openapi.json HTTP/1.1\r\nHost: m2m.test\r\n" + MANY_HEADERS + b"\r\n", 431),
    ],
)
def test_a_head_over_the_limit_sent_at_once_is_refused(
    server: ServerProcess, head: bytes, status: int
) -> None:
    assert stream(server.port, head, iter(())).status == status


def test_a_head_within_the_limit_is_served(server: ServerProcess) -> None:
    head = (
        b"GET /openapi.json HTTP/1.1\r\nHost: m2m.test\r\nX-Long: "
        + b"a" * 12_000
        + b"\r\nConnection: close\r\n\r\n"
    )
    exchange = stream(server.port, head, iter(()), stop_when_answered=False)
    assert exchange.status == 200


def test_the_head_limit_is_a_setting(tmp_path: Path) -> None:
    with serving(tmp_path, M2M_MAX_REQUEST_HEAD_BYTES="4096") as small:
        head = b"GET /openapi.json HTTP/1.1\r\nHost: m2m.test\r\nX-Long: " + b"a" * 5000
        exchange = stream(small.port, head + b"\r\n\r\n", iter(()))
        assert exchange.status == 431
        assert b"larger than 4096 bytes" in exchange.body
        # Keep-alive: the second request on a connection is bounded as the first.
        ok = b"GET /openapi.json HTTP/1.1\r\nHost: m2m.test\r\n\r\n"
        exchange = stream(small.port, ok + head, filler(1 * MB), stop_when_answered=False)
        assert exchange.answer.startswith(b"HTTP/1.1 200")
        assert b"HTTP/1.1 431" in exchange.answer


def test_pipelined_requests_before_a_refused_head_are_answered_first(
    server: ServerProcess,
) -> None:
    ok = b"GET /openapi.json HTTP/1.1\r\nHost: m2m.test\r\n\r\n"
    too_long = b"GET /openapi.json?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: m2m.test\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(ok + ok + too_long)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert statuses == [b"200", b"200", b"414"]
    assert answer.endswith(b'"error_description":"The URL is longer than 8192 bytes."}')


def test_a_refusal_waiting_behind_a_slow_answer_is_sent_while_the_client_streams_on() -> None:
    """A fast and a slow request pipelined, then a URL that never ends (10 MB): the slow
    answer, then the 414, both reach the client, however much it keeps sending meanwhile."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await asyncio.sleep(0.5)
        body = b'{"ok":1}'
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def scenario() -> list[bytes]:
        async with protocol_server(app) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for path in (b"/fast", b"/slow"):
                writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            writer.write(b"GET /x?")

            async def stream() -> None:
                with contextlib.suppress(ConnectionError):
                    for _ in range(160):
                        writer.write(b"a" * 65536)
                        await writer.drain()

            streaming = asyncio.create_task(stream())
            answer = b""
            with contextlib.suppress(ConnectionError):
                while data := await asyncio.wait_for(reader.read(65536), 10):
                    answer += data
            streaming.cancel()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            await asyncio.sleep(0.1)  # the server sees the client go and closes its side
        return re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)

    assert asyncio.run(scenario()) == [b"200", b"200", b"414"]
