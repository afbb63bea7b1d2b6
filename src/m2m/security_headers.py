"""What every answer of the server (API and console alike) says about its own security:

- ``X-Content-Type-Options: nosniff``: an answer is read as the type it declares, never sniffed
  into something a browser would run;
- ``Strict-Transport-Security`` outside the sandbox, on answers over HTTPS (``M2M_HSTS_MAX_AGE_
  SECONDS``): a browser that has seen it never again sends a console cookie over plain HTTP;
- a redirect's ``Location`` on the request's own host is made relative: Starlette writes it
  absolute from the ``Host`` header, which is the client's to choose (``Host: evil.example``
  was sent on to ``https://evil.example/console/``).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")


def relative_location(location: str, host: str | None) -> str:
    """``location`` without its scheme and host when the host is the request's own."""
    parts = urlsplit(location)
    if not parts.netloc or host is None or parts.netloc.lower() != host.lower():
        return location
    path = parts.path or "/"
    if path[1:2] in ("/", "\\"):
        # Relative, "//evil.example/x" (or "/\evil…", which browsers read alike) would name
        # another host; "/.//evil.example/x" is the same path on this one.
        path = "/." + path
    return urlunsplit(("", "", path, parts.query, parts.fragment))


class SecurityHeaders:
    """ASGI middleware adding the headers above to every answer. ``hsts_max_age`` None: no
    ``Strict-Transport-Security`` (the sandbox, served on plain HTTP on a laptop)."""

    def __init__(self, app: ASGIApp, hsts_max_age: int | None) -> None:
        self.app = app
        self.hsts = (
            None
            if hsts_max_age is None
            else (b"strict-transport-security", f"max-age={hsts_max_age}".encode())
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hsts = self.hsts if scope.get("scheme") == "https" else None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Plain list work: this runs for every answer of the hot paths.
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append(NOSNIFF)
                if hsts is not None and b"strict-transport-security" not in names:
                    headers.append(hsts)
                if b"location" in names:
                    hosts = (v.decode("latin-1") for n, v in scope["headers"] if n == b"host")
                    host = next(hosts, None)
                    headers = [
                        (name, relative_location(value.decode("latin-1"), host).encode("latin-1"))
                        if name.lower() == b"location"
                        else (name, value)
                        for name, value in headers
                    ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
