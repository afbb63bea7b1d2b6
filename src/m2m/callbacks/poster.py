"""POSTing callbacks: HTTP/1.1 over kept-alive connections, one pool per receiver, guarded as
``outbound`` says.

The worker posts every status message and event through ``CallbackPoster.post``. It was
aiohttp's client session before; for this one job (a small JSON body out, a status back) that
client cost about 115 µs more CPU per POST than this module on this machine (185 against 73 µs
for client and receiver together, ``scripts/bench_lifecycle.py``'s receiver, 64 in flight): per
request it builds a request object, a response object, a timer context, a middleware chain and
a connection key. Delivery is the worker's largest cost, so the difference is a fifth of a
device's whole CPU budget.

What a POST does:

- The URL is judged first (``outbound.check_url``: scheme, credentials, IP-literal hosts); a host
  name is resolved by ``outbound.GuardedResolver``, which returns only the addresses the policy
  allows, and only those are connected to (the DNS-rebinding rule of ``outbound``).
- Connections are kept alive per origin (scheme, host, port) and reused most recent first; one
  idle for more than ``IDLE_SECONDS`` is closed instead (receivers close theirs after 5 to 75 s).
  A reused connection that the receiver closed before answering anything is tried once more on
  a new connection: that is the race every keep-alive client has with a receiver's idle timeout.
  The receiver may have read the request before it closed; the message's ``webhook-id`` lets a
  receiver drop the second copy, as it does for any retry.
- https connects with the system's trust store and checks the host name (SNI sent).
- The status is returned as soon as the response's head is in; the body is read and dropped
  before the connection takes another request (a connection whose body has not ended
  ``BODY_GRACE_SECONDS`` after the head, or by the request's deadline, is closed). A 1xx interim
  answer is skipped. Bytes a receiver sends while no request is in flight close the connection.
- Redirects are never followed (the 3xx is returned), there is no proxy and no cookie.
- ``timeout_seconds`` bounds the whole request; ``connect_timeout_seconds`` the connection
  alone (name, TCP, TLS), raising ``ConnectTimeout``.

There is no connection limit here: the worker bounds how many POSTs are in flight
(``M2M_CALLBACK_CONCURRENCY``).
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Self, cast

import httptools
from aiohttp.abc import AbstractResolver
from yarl import URL

from m2m.callbacks.outbound import (
    AddressPolicy,
    GuardedResolver,
    InvalidCallbackUrl,
    check_parsed_url,
)

IDLE_SECONDS = 15.0  # an idle connection older than this is closed, not reused
# The rest of an answer's body is waited for this long after its head (and never past the
# request's deadline); a connection still receiving it then is closed, not kept.
BODY_GRACE_SECONDS = 1.0
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FORBIDDEN_IN_HEADERS = ("\r", "\n", "\0")

Origin = tuple[str, str, int]  # scheme, host (as connected to: IDNA, no brackets), port


class CannotConnect(ConnectionError):
    """No connection to the receiver: refused, unreachable, or its name not resolved."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot connect to {host}:{port}: {reason}")


class TlsFailed(ConnectionError):
    """The TLS handshake failed (an untrusted or mismatched certificate, most often)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"TLS failed with {host}:{port}: {reason}")


class ConnectTimeout(Exception):
    """No connection within ``connect_timeout_seconds``."""


class ReceiverHungUp(ConnectionError):
    """The receiver closed the connection before its answer's head was in."""


class BadResponse(ConnectionError):
    """The receiver's answer is not HTTP/1.x."""


def _reason(error: OSError) -> str:
    """An OS error in plain words: "Connection refused", not asyncio's "[Errno 111] Connect
    call failed ('127.0.0.1', 1)"."""
    if isinstance(error, socket.gaierror):
        return error.strerror or str(error)
    if error.errno:
        return os.strerror(error.errno)
    return error.strerror or str(error) or type(error).__name__


class _Connection(asyncio.Protocol):
    """One connection to a receiver, one request at a time."""

    def __init__(self, pool: CallbackPoster, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[int] | None = None  # the status of the request in flight
        self.interim = False  # the message being parsed is a 1xx answer
        self.answered_any = False  # bytes of an answer to the request in flight arrived
        self.complete = True  # no answer is being read
        self.requests = 0
        self.closing_timer: asyncio.TimerHandle | None = None  # closes an unfinished body
        self.idle_timer: asyncio.TimerHandle | None = None  # closes an unused idle connection

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses, hence the cast).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.complete:
            self.close()  # an answer to no request: the connection's state is unknown
            return
        self.answered_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadResponse("the receiver answered with a protocol upgrade"))
            self.close()
        except httptools.HttpParserError as error:
            self._fail(BadResponse(f"invalid HTTP answer: {error}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self.complete = False  # never reused
        for timer in (self.closing_timer, self.idle_timer):
            if timer is not None:
                timer.cancel()
        how = (
            "closed"
            if exc is None
            else f"broke ({_reason(exc) if isinstance(exc, OSError) else exc})"
        )
        self._fail(ReceiverHungUp(f"the connection {how} before the receiver answered"))
        self.pool.forget(self)

    # --- httptools callbacks

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self.interim = status < 200
        if not self.interim and self.answer is not None and not self.answer.done():
            self.answer.set_result(status)

    def on_message_complete(self) -> None:
        if self.interim:
            return
        if self.complete:
            self.close()  # a second answer to one request: the connection's state is unknown
            return
        keep = self.parser.should_keep_alive()
        self.complete = True
        if self.closing_timer is not None:
            self.closing_timer.cancel()
            self.closing_timer = None
        if keep and self.transport is not None and not self.transport.is_closing():
            self.pool.release(self)
        else:
            self.close()

    # --- the poster's side

    def send(self, request: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.answered_any = False
        self.complete = False
        self.requests += 1
        self.transport.write(request)
        return self.answer

    def close_if_idle(self) -> None:
        self.idle_timer = None
        if self.complete:
            self.close()  # connection_lost takes it out of the pool

    def usable(self) -> bool:
        # One idle too long is closed by its idle timer: is_closing() covers it.
        return self.complete and self.transport is not None and not self.transport.is_closing()

    def close_unless_complete(self) -> None:
        self.closing_timer = None
        if not self.complete:
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: Exception) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(error)


class CallbackPoster:
    """POSTs to callback receivers that ``policy`` allows (see the module). Create it in a
    running event loop; close it when done (``async with CallbackPoster(...) as poster``)."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        timeout_seconds: float,
        connect_timeout_seconds: float | None = None,
        require_https: bool = True,
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self.require_https = require_https
        self._timeout = timeout_seconds
        self._connect_timeout = min(connect_timeout_seconds or timeout_seconds, timeout_seconds)
        self._resolver = GuardedResolver(policy, resolver)
        self._ssl = ssl_context or ssl.create_default_context()
        self._idle: dict[Origin, collections.deque[_Connection]] = {}
        self._open: set[_Connection] = set()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, float]:
        """POST ``body`` to ``url`` with ``headers`` (Host and Content-Length are added); return
        the answer's status and the seconds until its head arrived."""
        try:
            parsed = URL(url)
        except (ValueError, TypeError) as exc:
            raise InvalidCallbackUrl(f"not a valid URL: {exc}") from exc
        check_parsed_url(parsed, self.policy, require_https=self.require_https)
        request = _request_bytes(parsed, body, headers)
        host = parsed.raw_host or ""
        origin = (parsed.scheme, host, parsed.port or _DEFAULT_PORTS[parsed.scheme])
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        async with asyncio.timeout_at(deadline):
            connection = self._reused(origin)
            if connection is not None:
                try:
                    status = await self._exchange(connection, request, deadline)
                    return status, time.perf_counter() - started
                except ReceiverHungUp:
                    if connection.answered_any:
                        raise
                    # The receiver closed the idle connection as we sent: nothing of this
                    # request was answered, so it goes again on a new connection.
            connection = await self._connect(origin)
            status = await self._exchange(connection, request, deadline)
            return status, time.perf_counter() - started

    # --- connections

    def release(self, connection: _Connection) -> None:
        self._idle.setdefault(connection.origin, collections.deque()).append(connection)
        # Closed when unused for IDLE_SECONDS even if its receiver is never posted to again.
        connection.idle_timer = asyncio.get_running_loop().call_later(
            IDLE_SECONDS, connection.close_if_idle
        )

    def forget(self, connection: _Connection) -> None:
        self._open.discard(connection)
        idle = self._idle.get(connection.origin)
        if idle is not None and connection in idle:
            idle.remove(connection)
            if not idle:
                del self._idle[connection.origin]

    def _reused(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()  # the most recently used: the others may time out
            if connection.idle_timer is not None:
                connection.idle_timer.cancel()
                connection.idle_timer = None
            if connection.usable():
                return connection
            connection.close()
        self._idle.pop(origin, None)
        return None

    async def _exchange(self, connection: _Connection, request: bytes, deadline: float) -> int:
        answer = connection.send(request)
        try:
            status = await answer
        except BaseException:
            connection.close()  # its state is unknown: a timeout, a cancellation, an error
            raise
        # Still this request's body, not the next one's: a connection whose answer came whole
        # went back to the pool at once and may carry another task's request already.
        if connection.answer is answer and not connection.complete:
            # The answer's body is still coming: the connection is released when it ends, and
            # closed if it has not ended soon (the worker's concurrency limit does not count
            # a connection still receiving a body it no longer waits for).
            loop = asyncio.get_running_loop()
            give_up = min(deadline, loop.time() + BODY_GRACE_SECONDS)
            connection.closing_timer = loop.call_at(give_up, connection.close_unless_complete)
        return status

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = self._ssl if scheme == "https" else None
        try:
            async with asyncio.timeout(self._connect_timeout):
                addresses = await self._addresses(host, port)
                failure: OSError | None = None
                for address, family in addresses:
                    try:
                        _transport, connection = await loop.create_connection(
                            lambda: _Connection(self, origin),
                            address,
                            port,
                            family=family,
                            ssl=tls,
                            # A fully qualified name's final dot is not part of the certificate's.
                            server_hostname=host.rstrip(".") if tls else None,
                        )
                    except ssl.SSLCertVerificationError as error:
                        reason = f"certificate verify failed: {error.verify_message}"
                        raise TlsFailed(host, port, reason) from error
                    except ssl.SSLError as error:
                        raise TlsFailed(host, port, error.reason or str(error)) from error
                    except OSError as error:
                        failure = error
                        continue
                    self._open.add(connection)
                    return connection
        except TimeoutError as error:
            raise ConnectTimeout(f"no connection within {self._connect_timeout:g} s") from error
        assert failure is not None
        raise CannotConnect(host, port, _reason(failure)) from failure

    async def _addresses(self, host: str, port: int) -> list[tuple[str, int]]:
        """Where to connect: an IP literal as it is (``check_parsed_url`` judged it), a name
        through the guarded resolver (only allowed addresses)."""
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        except OSError:
            pass
        else:
            return [(host, socket.AF_INET6 if ":" in host else socket.AF_INET)]
        try:
            results = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
        except OSError as error:
            raise CannotConnect(host, port, _reason(error)) from error
        return [(result["host"], result["family"]) for result in results]


def _request_bytes(url: URL, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [
        f"POST {url.raw_path_qs} HTTP/1.1",
        f"Host: {url.host_port_subcomponent}",
        f"Content-Length: {len(body)}",
    ]
    for name, value in headers.items():
        # The callback rules refuse such headers when they are configured; this keeps a stored
        # one from splitting the request all the same.
        if any(c in name or c in value for c in _FORBIDDEN_IN_HEADERS):
            raise InvalidHeader(f"the header {name!r} holds a line break or NUL")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8") + body


class InvalidHeader(ValueError):
    """A header that would split the request: never sent."""
