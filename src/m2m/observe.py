"""What the composition puts around every request to see it from outside: its id, its log
lines, its metrics.

- **X-Request-ID.** The caller's, when it is sane (``audit.request_id_from``: one printable
  token of at most 100 characters), else a new one; it is put back in the request's headers
  (so the audit trail and the lifecycle request record the same id whoever sent it), on every
  log line written while the request runs (``logs.begin``) and on the answer.
- **Access log.** One line per request once its answer is sent (``m2m.access``): the method,
  the target without credentials (``logs.redact``), the status, the time taken, the route
  template. Probes (``/healthz`` …) are logged at DEBUG, not INFO: a load balancer probing every
  second would drown everything else.
- **Metrics.** Requests by route *template* (never the raw path: a label per ICCID would be
  unbounded), method and status; their latency; 401s and 429s (``m2m.metrics``), tallied and
  written in batches (``m2m.request_tally``: at most a second later, at each scrape, at stop).

It is the outermost layer, so an answer refused before any route runs (a body too large, plain
HTTP) has an id, a log line and a count too. It costs per request (see docs/benchmarks.md for the
measurement).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from m2m import logs, metrics, request_tally
from m2m.audit import request_id_from
from m2m.health import PROBE_PATHS

HEADER = b"x-request-id"
UNMATCHED = "unmatched"  # the route label of a request no route matched (a 404)
access_log = logging.getLogger("m2m.access")


def route_template(scope: Scope) -> str:
    """The template of the route that answered (``/m2m/1.0.0/simcards/{iccid}``), or UNMATCHED:
    the path with each path parameter's value put back as ``{name}``. (Read from the path, not
    the route object: FastAPI keeps an included router's routes without their prefix.)"""
    # A matched route leaves its endpoint in the scope (FastAPI's router sets no "route" for
    # the routes it adds itself, such as /openapi.json).
    if scope.get("endpoint") is None and scope.get("route") is None:
        return UNMATCHED
    path: str = scope["path"]
    params = scope.get("path_params")
    if not params:
        return path
    segments = path.split("/")
    for name, value in params.items():
        text = str(value)
        if "/" in text:  # a {name:path} parameter: the end of the path
            if path.endswith(text):
                kept = path[: len(path) - len(text)].split("/")
                segments = [*kept[:-1], kept[-1] + f"{{{name}}}"]
            continue
        for index in range(len(segments) - 1, -1, -1):
            if segments[index] == text:
                segments[index] = f"{{{name}}}"
                break
    return "/".join(segments)


POOL_SAMPLE_SECONDS = 1.0  # how often the connections in use are sampled, at most


class Observe:
    """ASGI middleware: request ids, access log and metrics (``count=False``: no metrics);
    ``pool_in_use`` says how many database connections are checked out now."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        count: bool = True,
        pool_in_use: Callable[[], int] = lambda: 0,
    ) -> None:
        self.app = app
        self.count = count
        self._pool_in_use = pool_in_use
        self._pool_sampled_at = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            if scope["type"] == "lifespan" and self.count:
                request_tally.REQUESTS.flush()  # the app has stopped: its last requests
            return
        started = time.perf_counter()
        headers = scope["headers"]
        given = None
        for name, value in headers:
            if name == HEADER:
                given = value.decode("latin-1")
                break
        request_id = request_id_from(given)
        if request_id is None:
            request_id = uuid.uuid4().hex
            scope["headers"] = [
                *(pair for pair in headers if pair[0] != HEADER),
                (HEADER, request_id.encode()),
            ]
        answer_header = (HEADER, request_id.encode())
        context = logs.begin(request_id)
        status = 500  # unless an answer starts

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), answer_header]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            duration = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"]
            if self.count:
                if request_tally.REQUESTS.add(route, method, status, duration):
                    asyncio.get_running_loop().call_later(
                        request_tally.FLUSH_SECONDS, request_tally.REQUESTS.flush
                    )
                if started - self._pool_sampled_at > POOL_SAMPLE_SECONDS:
                    self._pool_sampled_at = started
                    metrics.DB_CONNECTIONS_IN_USE.set(self._pool_in_use())
            level = logging.DEBUG if scope["path"] in PROBE_PATHS else logging.INFO
            if access_log.isEnabledFor(level):
                self._log(scope, level, route, status, duration, context.account_id)

    def _log(
        self,
        scope: Scope,
        level: int,
        route: str,
        status: int,
        duration: float,
        account_id: int | None,
    ) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        target = scope["path"] + (f"?{query}" if query else "")
        client = scope.get("client")
        duration_ms = round(duration * 1000, 1)
        access_log.log(
            level,
            '%s "%s %s HTTP/%s" %d %.1f ms',
            f"{client[0]}:{client[1]}" if client else "-",
            scope["method"],
            logs.redact(target),
            scope.get("http_version", "1.1"),
            status,
            duration_ms,
            extra={
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "account_id": account_id,
            },
        )
