"""The API's hottest calls, answered ahead of FastAPI's routing: ``GET /simcards`` and
``POST /token``.

Each is also an ordinary FastAPI route (the OpenAPI document is made from those); here the
same endpoint function is put first in the app's routes as a plain Starlette route. A request
for it then skips FastAPI 0.165's routing through every included router (each matched in turn,
with its scope bookkeeping) and its request handler (dependency solving, for endpoints that
declare none and read the request themselves). That was about a quarter of the lookup's CPU
time in-process (``scripts/bench_asgi.py``: 277 → 209 µs). Nothing else changes: the same
middleware runs around it, its exceptions go to the same handlers, the route's endpoint is in
the scope for the metrics' route label, and another method still gets the same 405.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from m2m.api import oauth, simcards

Endpoint = Callable[[Request], Awaitable[Response]]


def hot_route(path: str, endpoint: Endpoint, method: str) -> Route:
    route = Route(path, endpoint, methods=[method], name=endpoint.__name__)
    route.methods = {method}  # as the FastAPI route: no implicit HEAD for a GET
    return route


def hot_routes(m2m_prefix: str) -> list[BaseRoute]:
    """To put first in the app's routes; each endpoint takes the request alone."""
    return [
        hot_route(f"{m2m_prefix}/simcards", simcards.get_simcards, "GET"),
        hot_route("/token", oauth.token, "POST"),
    ]
