"""An answer's head leaves with its body in one write (``m2m.http_coalesce``): the server's
protocol on a real socket, each ``transport.write`` it makes recorded on the way out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from m2m.http_head import BoundedHttpToolsProtocol
from tests.support.protocol_server import protocol_server

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class _Recording:
    """The real transport, each write recorded."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def _exchange(app: ASGIApp, request: bytes) -> tuple[list[bytes], bytes]:
    """Serve ``app`` on 127.0.0.1, send ``request``, read until the server closes: the writes
    the server made and the bytes the client read."""
    writes: list[bytes] = []

    class Protocol(BoundedHttpToolsProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(_Recording(transport, writes))  # type: ignore[arg-type]

    async with protocol_server(app, Protocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        received = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    return writes, received


def _answer(*bodies: bytes, length: bool = True) -> ASGIApp:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json")]
        if length:
            headers.append((b"content-length", str(sum(map(len, bodies))).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index, body in enumerate(bodies):
            more = index < len(bodies) - 1
            await send({"type": "http.response.body", "body": body, "more_body": more})

    return app


GET = b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def test_an_answer_is_one_write() -> None:
    writes, received = asyncio.run(_exchange(_answer(b'{"a":1}'), GET))
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(b'\r\n\r\n{"a":1}')
    assert received == writes[0]


def test_a_streamed_answer_sends_its_head_with_the_first_piece() -> None:
    writes, received = asyncio.run(_exchange(_answer(b"one,", b"two", length=False), GET))
    assert len(writes) == 2
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in writes[0]
    assert writes[0].endswith(b"\r\n\r\n4\r\none,\r\n")
    assert writes[1] == b"3\r\ntwo\r\n0\r\n\r\n"
    assert received == b"".join(writes)


@pytest.mark.parametrize("method", [b"HEAD", b"GET"])
def test_an_answer_without_a_body_still_sends_its_head(method: bytes) -> None:
    request = method + b" /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    writes, received = asyncio.run(_exchange(_answer(b""), request))
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b"content-length: 0\r\nconnection: close\r\n\r\n")
    assert len(writes) == 1


def test_keep_alive_answers_each_go_in_one_write_and_in_order() -> None:
    keep = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
    writes, received = asyncio.run(_exchange(_answer(b'{"a":1}'), keep + keep + GET))
    assert len(writes) == 3
    assert received.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert received == b"".join(writes)
