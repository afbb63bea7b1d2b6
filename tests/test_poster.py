"""The callback poster's connections, against real servers on 127.0.0.1: kept alive and reused,
retried once when a receiver drops a kept connection, answers read to their end (chunked, slow,
interim), TLS checked, and a request never split by a header.

The receivers here are raw asyncio servers, so that each test controls the bytes of the answer
and sees every connection; coroutines run under ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme
import uvloop
from aiohttp.abc import AbstractResolver, ResolveResult

from m2m.callbacks import poster as poster_module
from m2m.callbacks.outbound import AddressPolicy
from m2m.callbacks.poster import BadResponse, CallbackPoster, InvalidHeader, TlsFailed

LOOPBACK = AddressPolicy(allow_loopback=True)
BODY = b'{"trackingNumber":"t"}'
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@dataclass
class RawReceiver:
    """Counts connections and requests; ``answer(n, request)`` gives the bytes to send back for
    the n-th request on a connection (None: hang up without answering), after ``pause(request)``
    seconds."""

    answer: Callable[[int, bytes], bytes | None]
    pause: Callable[[bytes], float] = lambda _request: 0.0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0

    def url(self, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}/cb?x=1"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                n += 1
                answer = self.answer(n, request)
                if answer is None:
                    break
                await asyncio.sleep(self.pause(request))
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def raw_receiver(
    answer: Callable[[int, bytes], bytes | None], tls: ssl.SSLContext | None = None
) -> AsyncIterator[RawReceiver]:
    receiver = RawReceiver(answer)
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", 0, ssl=tls)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()


class StaticResolver(AbstractResolver):
    """Names this test gives addresses to (a hosts file of its own)."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.names[host]
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def run_in(loop: str, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Under asyncio's own loop or uvloop's (the one the server runs the worker in)."""
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        runner.run(scenario())


def poster(timeout: float = 5, **options: object) -> CallbackPoster:
    return CallbackPoster(LOOPBACK, timeout_seconds=timeout, require_https=False, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("loop", LOOPS)
def test_connections_are_kept_alive_and_the_request_is_well_formed(loop: str) -> None:
    async def scenario() -> None:
        async with raw_receiver(lambda _n, _r: OK) as server, poster() as client:
            for _ in range(5):
                status, _latency = await client.post(
                    server.url(), BODY, {"Content-Type": "application/json", "X-A": "b"}
                )
                assert status == 200
            assert server.connections == 1
            assert len(server.requests) == 5
            assert server.requests[0] == (
                b"POST /cb?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n"
                b"Content-Type: application/json\r\nX-A: b\r\n\r\n%s"
                % (server.port, len(BODY), BODY)
            )

    run_in(loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_kept_connection_the_receiver_drops_unanswered_is_retried_on_a_new_one(loop: str) -> None:
    async def scenario() -> None:
        # Each connection answers its first request only: the second POST finds the kept
        # connection dropped without an answer, and goes again on a new one.
        async with raw_receiver(lambda n, _r: OK if n == 1 else None) as server:
            async with poster() as client:
                assert (await client.post(server.url(), BODY, {}))[0] == 200
                assert (await client.post(server.url(), BODY, {}))[0] == 200
            assert server.connections == 2

    run_in(loop, scenario)


def test_a_new_connection_dropped_unanswered_is_an_error_not_retried() -> None:
    async def scenario() -> None:
        async with raw_receiver(lambda _n, _r: None) as server, poster() as client:
            with pytest.raises(ConnectionError, match="before the receiver answered"):
                await client.post(server.url(), BODY, {})
            assert server.connections == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("loop", LOOPS)
def test_a_chunked_answer_is_read_to_its_end_and_the_connection_reused(loop: str) -> None:
    chunked = (
        b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )

    async def scenario() -> None:
        async with raw_receiver(lambda _n, _r: chunked) as server, poster() as client:
            for _ in range(3):
                assert (await client.post(server.url(), BODY, {}))[0] == 202
            assert server.connections == 1

    run_in(loop, scenario)


def test_an_interim_answer_is_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"

    async def scenario() -> None:
        async with raw_receiver(lambda _n, _r: answer) as server, poster() as client:
            assert (await client.post(server.url(), BODY, {}))[0] == 204
            assert (await client.post(server.url(), BODY, {}))[0] == 204
            assert server.connections == 1

    asyncio.run(scenario())


def test_an_answer_whose_body_never_ends_gives_its_status_and_its_connection_is_not_reused() -> (
    None
):
    unfinished = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this"

    async def scenario() -> None:
        async with raw_receiver(lambda _n, _r: unfinished) as server, poster(0.5) as client:
            status, _ = await client.post(server.url(), BODY, {})
            assert status == 200  # the head is the answer; the body is not waited for
            await asyncio.sleep(0.8)  # past the request's deadline: that connection is closed
            assert (await client.post(server.url(), BODY, {}))[0] == 200
            assert server.connections == 2

    asyncio.run(scenario())


def test_an_answer_that_is_not_http_is_an_error() -> None:
    async def scenario() -> None:
        not_http = b"SSH-2.0-OpenSSH_9.2\r\n\r\n"
        async with raw_receiver(lambda _n, _r: not_http) as server, poster() as client:
            with pytest.raises(BadResponse, match="invalid HTTP answer"):
                await client.post(server.url(), BODY, {})

    asyncio.run(scenario())


def test_an_upgrade_answer_is_an_error() -> None:
    upgrade = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n"

    async def scenario() -> None:
        async with raw_receiver(lambda _n, _r: upgrade) as server, poster() as client:
            with pytest.raises(BadResponse, match="upgrade"):
                await client.post(server.url(), BODY, {})

    asyncio.run(scenario())


def test_an_idle_connection_is_closed_even_if_its_receiver_is_not_posted_to_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(poster_module, "IDLE_SECONDS", 0.2)

    async def scenario() -> None:
        async with raw_receiver(lambda _n, _r: OK) as server, poster() as client:
            assert (await client.post(server.url(), BODY, {}))[0] == 200
            assert len(client._open) == 1
            await asyncio.sleep(0.5)
            assert client._open == set()
            assert client._idle == {}

    asyncio.run(scenario())


def test_bytes_sent_while_no_request_is_in_flight_close_the_connection() -> None:
    async def scenario() -> None:
        extra = OK + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"  # two answers to one
        async with raw_receiver(lambda _n, _r: extra) as server, poster() as client:
            assert (await client.post(server.url(), BODY, {}))[0] == 200
            await asyncio.sleep(0.1)
            # The second answer would have been taken for the next request's: not reused.
            assert (await client.post(server.url(), BODY, {}))[0] == 200
            assert server.connections == 2

    asyncio.run(scenario())


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\0b"])
def test_a_header_with_a_line_break_is_never_sent(value: str) -> None:
    async def scenario() -> None:
        async with raw_receiver(lambda _n, _r: OK) as server, poster() as client:
            with pytest.raises(InvalidHeader):
                await client.post(server.url(), BODY, {"X-Custom": value})
            assert server.connections == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("loop", LOOPS)
def test_https_checks_the_certificate_and_the_host_name(loop: str) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_tls)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)

    async def scenario() -> None:
        async with raw_receiver(lambda _n, _r: OK, tls=server_tls) as server:
            # The system's trust store does not know this authority: nothing is sent.
            async with poster() as client:
                with pytest.raises(TlsFailed, match="certificate verify failed"):
                    await client.post(server.url("https"), BODY, {})
            async with poster(ssl_context=trusting) as client:
                assert (await client.post(server.url("https"), BODY, {}))[0] == 200
                assert (await client.post(server.url("https", "localhost"), BODY, {}))[0] == 200
            # A fully qualified name (this machine's resolver is told where it is: no DNS
            # here): the certificate's name has no final dot.
            resolver = StaticResolver({"localhost.": "127.0.0.1"})
            async with poster(ssl_context=trusting, resolver=resolver) as client:
                assert (await client.post(server.url("https", "localhost."), BODY, {}))[0] == 200
            assert len(server.requests) == 3

    run_in(loop, scenario)


def test_the_body_grace_of_one_answer_never_closes_the_next_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A's answer arrives whole, its connection goes back to the pool, and B's task (woken in
    the same turn, before A's) sends B on it: the grace timer of A's body must not close B's
    connection while B's receiver takes its time (B would be sent twice)."""
    monkeypatch.setattr(poster_module, "BODY_GRACE_SECONDS", 0.2)
    b_may_start = asyncio.Event()
    original = poster_module._Connection.data_received

    def wake_b_first(connection: Any, data: bytes) -> None:
        b_may_start.set()  # B's task is scheduled before A's, whose answer this is
        monkeypatch.setattr(poster_module._Connection, "data_received", original)
        original(connection, data)

    async def scenario() -> None:
        async with raw_receiver(lambda _n, _r: OK) as receiver, poster() as client:
            receiver.pause = lambda request: 0.6 if request.endswith(b"B") else 0.0  # > grace
            url = receiver.url()
            assert (await client.post(url, b"W", {}))[0] == 200  # one kept connection

            async def post_b() -> int:
                await b_may_start.wait()
                return (await client.post(url, b"B", {}))[0]

            b_task = asyncio.create_task(post_b())
            await asyncio.sleep(0)
            monkeypatch.setattr(poster_module._Connection, "data_received", wake_b_first)
            assert (await client.post(url, b"A", {}))[0] == 200
            assert await b_task == 200
        bodies = [request.rsplit(b"\r\n\r\n", 1)[1] for request in receiver.requests]
        assert bodies == [b"W", b"A", b"B"]

    asyncio.run(scenario())
