"""The HTTP server's protocol, with the request's head bounded: ``m2m serve`` runs uvicorn with
``BoundedHttpToolsProtocol``.

uvicorn picks httptools when it is installed (it is, with ``uvicorn[standard]``), and its
httptools protocol takes a request line and headers of any size: a 100 MB header or URL was
parsed for 9 s and held in memory whole before any answer. uvicorn bounds the head only in its
pure-Python h11 protocol (``h11_max_incomplete_event_size``). This protocol applies the same
setting to httptools, and counts while the head arrives:

- a URL longer than ``MAX_URL_BYTES`` is answered ``414``;
- a head (request line and headers) larger than the limit is answered ``431``;

both as JSON, as every other error, and the connection is then closed.

Two details make sure the client reads that answer:

- A refusal that comes while the connection's previous response is still being written (a
  pipelined request) waits for that response, so the answers stay in order.
- The connection is closed as nginx's "lingering close" does: the answer is sent with a FIN, and
  whatever the client is still sending is read and dropped for at most ``LINGER_SECONDS`` and
  ``LINGER_BYTES``. Closing a socket with unread bytes makes the kernel send a reset, and a reset
  makes the client's kernel drop what it has received but not yet read: the 431 itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from m2m.http_coalesce import CoalescingCycle

# A URL of the API or the console is at most a few hundred bytes; browsers and proxies commonly
# stop at 8 KiB.
MAX_URL_BYTES = 8 * 1024
DEFAULT_MAX_HEAD_BYTES = 16 * 1024  # h11's own default
# After a refusal, what the client still sends is dropped for this long, up to this much.
LINGER_SECONDS = 2.0
LINGER_BYTES = 4 * 1024 * 1024

log = logging.getLogger("m2m.http")

_ANSWERS = {
    414: ("url_too_long", "The URL is longer than {limit} bytes."),
    431: ("headers_too_large", "The request line and headers are larger than {limit} bytes."),
}


class _HeadTooLarge(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing an over-long URL or head while it arrives.

    The head's limit is ``config.h11_max_incomplete_event_size``, the setting uvicorn's h11
    protocol applies to the same thing, so either protocol runs with one configured limit.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEAD_BYTES
        self.max_url_bytes = min(MAX_URL_BYTES, self.max_head_bytes)
        self.receiving_head = True  # until the headers of the current request are complete
        self.head_bytes = 0  # bytes received while the head was incomplete
        self.refusal: int | None = None  # the status refused, once a head is over the limit
        self.lingering_bytes = 0  # bytes dropped since the refusal was sent

    def data_received(self, data: bytes) -> None:
        if self.refusal is not None:
            self._drop(data)
            return
        # uvicorn's own, but for our refusals: a parser callback's exception would otherwise be
        # answered (and logged) as a malformed request.
        self._unset_keepalive_if_required()
        if self.receiving_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _HeadTooLarge):
                self._refuse(error.__context__.status)
                return
            self._malformed()
            return
        except httptools.HttpParserError:
            self._malformed()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self.receiving_head and self.head_bytes > self.max_head_bytes:
            # Still no end of the headers: this is how a huge header is caught as it streams
            # (httptools keeps a header to itself until its value is complete). A head that
            # began in the middle of a read (pipelined after another request) is counted from
            # the next read on, so it may carry one read's bytes more before it is refused.
            self._refuse(431)

    def _malformed(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.receiving_head = True

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.max_url_bytes:
            raise _HeadTooLarge(414)

    def on_headers_complete(self) -> None:
        head = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if head > self.max_head_bytes:
            raise _HeadTooLarge(431)
        self.receiving_head = False
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not before and self.cycle is not None:
            CoalescingCycle.adopt(self.cycle)  # before its task first runs

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.receiving_head = True
        self.head_bytes = 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.refusal is not None:
            self._refuse_once_answered()

    def _refuse(self, status: int) -> None:
        if self.refusal is not None or self.transport.is_closing():
            return
        self.refusal = status
        self.receiving_head = False
        self._refuse_once_answered()

    def _refuse_once_answered(self) -> None:
        """Pipelined requests received before the refused head are answered first, in order:
        the refusal goes once the last of them (``self.cycle``) has been written. Until then
        reading stays paused (uvicorn resumes it after each answer), so the rest of the refused
        request waits in the client's socket, not in our lingering allowance."""
        if not self.pipeline and (self.cycle is None or self.cycle.response_complete):
            self._send_refusal()
        else:
            self.flow.pause_reading()

    def _send_refusal(self) -> None:
        status = self.refusal
        assert status is not None
        if self.transport.is_closing():
            return
        limit = self.max_url_bytes if status == 414 else self.max_head_bytes
        code, description = _ANSWERS[status]
        description = description.format(limit=limit)
        body = json.dumps({"error": code, "error_description": description}, separators=(",", ":"))
        client = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
        log.warning("%srefused with %d: %s", client, status, description)
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body.encode("ascii"))
        self._unset_keepalive_if_required()
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _drop(self, data: bytes) -> None:
        """What arrives after a refusal: dropped, until the client stops or the limit is hit."""
        self.lingering_bytes += len(data)
        if self.lingering_bytes > LINGER_BYTES:
            self.transport.close()
