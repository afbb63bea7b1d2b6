"""Request bodies bounded per route, refused while they arrive.

``BodyLimits`` sits in front of the whole app (API and console) and counts the bytes of a
request's body as the app reads them. A body over its route's limit is answered
``413 {"error", "error_description"}`` at once: before anything is read when its
``Content-Length`` says so, otherwise as soon as the limit is passed while it streams; the app
then sees the client as gone (``http.disconnect``) and what it answers is dropped. Nothing past
the limit is read, so a 300 MB body costs the server no more memory than its route's limit.

What a route reads at all is the route's business: the M2M API checks credentials before it
reads a body, so a caller without them is answered before its body is read. An answer given
while the body is still arriving closes the connection (as uvicorn's h11 server does on its
own), so the rest of that body is never read either.

The request's head (request line and headers) is bounded by the HTTP server, see
``m2m.http_head``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """The most bytes a route's body may have, and how a larger one is answered."""

    max_bytes: int
    code: str = "body_too_large"
    message: str = "The body is larger than {max_bytes} bytes, the most this address accepts."

    def answer(self) -> bytes:
        description = self.message.format(max_bytes=self.max_bytes)
        answer = {"error": self.code, "error_description": description}
        return json.dumps(answer, separators=(",", ":")).encode()


def _matches(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/")


def _body_headers(scope: Scope) -> tuple[int | None, bool]:
    """The request's Content-Length (None: absent or not a number) and whether it is chunked."""
    declared, chunked = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            # A malformed one never gets here: the HTTP server refuses the request.
            with contextlib.suppress(ValueError):
                declared = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    return declared, chunked


async def _refuse(send: Send, limit: BodyLimit) -> None:
    body = limit.answer()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is not wanted: no keep-alive reading it to find the next
                # request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimits:
    """ASGI middleware: each request's body within the limit of the first route prefix that
    matches its path (``routes``), or ``default``."""

    def __init__(
        self, app: ASGIApp, routes: Sequence[tuple[str, BodyLimit]], default: BodyLimit
    ) -> None:
        self.app = app
        # Longest prefix first, so that a route's own limit wins over its folder's.
        self.routes = sorted(routes, key=lambda route: len(route[0]), reverse=True)
        self.default = default

    def limit_for(self, path: str) -> BodyLimit:
        return next(
            (limit for prefix, limit in self.routes if _matches(path, prefix)), self.default
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _body_headers(scope)
        if not declared and not chunked:
            await self.app(scope, receive, send)  # no body: nothing to count (most requests)
            return
        limit = self.limit_for(scope["path"])
        if declared is not None and declared > limit.max_bytes:
            await _refuse(send, limit)
            return
        received = 0
        body_complete = False
        refused = False

        async def receive_within_limit() -> Message:
            nonlocal received, body_complete, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_complete = not message.get("more_body", False)
                if received > limit.max_bytes:
                    refused = True
                    if not response_started:
                        await _refuse(send, limit)
                    return {"type": "http.disconnect"}
            return message

        response_started = False

        async def send_unless_refused(message: Message) -> None:
            nonlocal response_started
            if refused:
                return  # our 413 was the answer
            if message["type"] == "http.response.start":
                response_started = True
                if not body_complete:
                    # Answered before the body was read (a 401, a 403): the rest of it is never
                    # read, so the connection cannot carry another request.
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"connection", b"close")],
                    }
            await send(message)

        await self.app(scope, receive_within_limit, send_unless_refused)
