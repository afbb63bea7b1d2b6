"""One write per answer: the head (status line and headers) goes out with the body.

uvicorn writes an answer's head as soon as the app sends ``http.response.start``, then the body
with ``http.response.body``: two ``transport.write`` calls, each a ``send(2)`` system call with
uvloop, for answers that are nearly all one small body (a SIM's profile, a token). On
``GET /simcards`` under load uvicorn's ``send`` was a fifth of the server process's samples.
``CoalescingCycle`` holds the head back and writes it with the first piece of body, so the
answer leaves in one call (and one TCP segment when it fits).

Nothing else changes: uvicorn's own ``send`` still builds the head, checks the headers, counts
the body against Content-Length, completes the response and closes the connection when it
must; only the transport it writes to is, for the time of one call, a buffer. A HEAD answer has
no body write, so its head is written as before. An app that fails after starting its answer
and before any body (uvicorn then closes the connection) leaves the client a closed connection
without a status line, where it used to get a head and then the close: broken either way, and
the server logs the app's error.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle


class _HeadBuffer:
    """Stands in for the transport while uvicorn writes the head: keeps what it writes."""

    __slots__ = ("head", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.head = b""

    def write(self, data: bytes) -> None:
        self.head += data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _HeadFirst:
    """Stands in for the transport while uvicorn writes the body: the held head goes out with
    the first write, or before the connection is closed."""

    __slots__ = ("head", "transport")

    def __init__(self, transport: Any, head: bytes) -> None:
        self.transport = transport
        self.head = head

    def write(self, data: bytes) -> None:
        if self.head:
            data = self.head + data
            self.head = b""
        self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def flush(self) -> None:
        if self.head:
            self.transport.write(self.head)
            self.head = b""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class CoalescingCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, writing an answer's head with its body (see the
    module). ``adopt`` turns the cycle uvicorn has just made into one of these."""

    held_head: bytes

    @classmethod
    def adopt(cls, cycle: RequestResponseCycle) -> None:
        cycle.__class__ = cls
        assert isinstance(cycle, CoalescingCycle)
        cycle.held_head = b""

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and self.scope["method"] != "HEAD":
            transport, buffer = self.transport, _HeadBuffer(self.transport)
            self.transport = buffer  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = transport
            self.held_head = buffer.head
            return
        if not self.held_head:
            await super().send(message)
            return
        transport, head_first = self.transport, _HeadFirst(self.transport, self.held_head)
        self.held_head = b""
        self.transport = head_first  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
            if not transport.is_closing():  # a client gone: nothing more to write
                head_first.flush()
