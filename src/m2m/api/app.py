"""``create_api(services)``: the M2M API as a FastAPI app (its routes, error answers and OpenAPI
document); ``m2m.asgi.create_app`` mounts the console beside it and runs the worker."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.constants import REF_TEMPLATE
from fastapi.openapi.models import Schema
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from m2m import __version__, health, metrics
from m2m.api import (
    audit_events,
    callback,
    event_subscriptions,
    events,
    oauth,
    operator_usage,
    requests,
    sandbox,
    sim_updates,
    simcards,
    usage,
)
from m2m.api.deps import CALLER_SECURITY, RATE_LIMIT_SCOPE_KEY
from m2m.api.docs import add_docs
from m2m.api.error_handlers import EXCEPTION_HANDLERS, M2M_PREFIX, json_error
from m2m.api.hot_routes import hot_routes
from m2m.profile import MAX_THRESHOLD
from m2m.services import Services

DESCRIPTION = """\
A wire-compatible implementation of the operator's M2M API. Get a token with `POST /token`
(client credentials), then call `/m2m/1.0.0/...` with `Authorization: Bearer <token>` and your
account's `x-api-key`. Errors are JSON: `{"error": code, "error_description": message}`.
"""


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def is_loopback_probe(scope: Scope) -> bool:
    """A probe (``/healthz``, ``/readyz``, ``/metrics``) from this machine: a watchdog or a local
    agent, which talks plain HTTP to the port even where the API itself is HTTPS-only."""
    client = scope.get("client")
    return (
        scope.get("path") in health.PROBE_PATHS
        and client is not None
        and (client[0] in LOOPBACK_HOSTS or client[0].startswith("127."))
    )


class RequireHttps:
    """Outside the sandbox, answer plain-HTTP requests with an error instead of serving them.

    The scheme is the one uvicorn saw: ``https`` with its own TLS, or the proxy's
    ``X-Forwarded-Proto`` when it runs behind a trusted TLS-terminating proxy. Probes from
    loopback are let through (``is_loopback_probe``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("scheme") != "https"
            and not is_loopback_probe(scope)
        ):
            response = json_error(
                403, "https_required", "This API is served over HTTPS only; use https://."
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class RateLimitHeaders:
    """Every answer to an identified account says where it stands against its rate limit
    (``RateLimit-*`` headers; the verdict is left in the scope by ``api.deps.authorized``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                verdict = scope.get(RATE_LIMIT_SCOPE_KEY)
                if verdict is not None:
                    message["headers"] = [*message.get("headers", ()), *verdict.headers()]
            await send(message)

        await self.app(scope, receive, with_headers)


def create_api(
    services: Services, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]
) -> FastAPI:
    """The API's app over ``services``, running ``lifespan`` while it is up."""
    settings = services.settings
    app = FastAPI(
        telemetry=metrics.NO_NATIVE_TELEMETRY,
        title="M2M API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        # Stable operationIds, the route's own name (token, get_simcards, request_status, …),
        # rather than FastAPI's path-derived ones: generated clients name their methods by them.
        generate_unique_id_function=lambda route: route.name,
        docs_url=None,  # served by m2m.api.docs, with a Content-Security-Policy
        redoc_url=None,
    )
    add_docs(app)
    app.state.services = services
    probe = health.Probe(
        services.engine,
        services.clock,
        lambda: services.worker,
        expects_worker=settings.embedded_worker,
        serve_metrics=settings.metrics_enabled,
        pool_in_use=metrics.connections_in_use(services.engine, services.reads),
    )
    app.router.routes.extend(health.routes(probe))
    app.router.routes[:0] = hot_routes(M2M_PREFIX)  # see m2m.api.hot_routes
    app.include_router(oauth.router)
    app.include_router(simcards.router, prefix=M2M_PREFIX)
    app.include_router(sim_updates.router, prefix=M2M_PREFIX)
    app.include_router(callback.router, prefix=M2M_PREFIX)
    app.include_router(requests.router, prefix=M2M_PREFIX)
    app.include_router(audit_events.router, prefix=M2M_PREFIX)
    app.include_router(requests.request_router(settings.max_devices_per_request), prefix=M2M_PREFIX)
    app.include_router(events.router, prefix=M2M_PREFIX)
    app.include_router(event_subscriptions.router, prefix=M2M_PREFIX)
    app.include_router(usage.router, prefix=M2M_PREFIX)
    app.include_router(operator_usage.router)
    events.add_webhooks(app)
    if settings.sandbox:
        # Absent, not refused, outside the sandbox: a production server has no such paths.
        app.include_router(sandbox.router)
    app.add_middleware(RateLimitHeaders)
    if not settings.sandbox:
        app.add_middleware(RequireHttps)
    app.openapi = _openapi_of(app)  # type: ignore[method-assign]
    return app


def _openapi_of(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's document, plus the client-authentication scheme /token and /revoke declare,
    and what FastAPI cannot say by itself (see ``_state_what_fastapi_cannot``)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                webhooks=app.webhooks.routes,
            )
            components = schema.setdefault("components", {})
            # Bodies read by hand (after the credentials) are described by their models here.
            schemas = components.setdefault("schemas", {})
            for model in (
                *callback.BODY_MODELS,
                *sim_updates.BODY_MODELS,
                *event_subscriptions.BODY_MODELS,
            ):
                # Through FastAPI's own model of a schema, as FastAPI writes every other one.
                generated = model.model_json_schema(ref_template=REF_TEMPLATE)
                # Nested models are components of their own, as FastAPI writes them.
                for name, nested in {
                    **generated.pop("$defs", {}),
                    model.__name__: generated,
                }.items():
                    schemas[name] = jsonable_encoder(
                        Schema.model_validate(nested), by_alias=True, exclude_none=True
                    )
            components["schemas"] = dict(sorted(schemas.items()))
            schemes = components.setdefault("securitySchemes", {})
            schemes["clientBasic"] = {
                "type": "http",
                "scheme": "basic",
                "description": "client_id:client_secret of an OAuth2 application.",
            }
            _state_what_fastapi_cannot(schema["paths"])
            events.describe_webhook_answers(schema.get("webhooks", {}))
            _exact_integer_bounds(schema["components"]["schemas"])
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def _exact_integer_bounds(node: Any) -> None:
    """FastAPI's OpenAPI models hold ``maximum``/``minimum`` as floats, which turns the
    thresholds' 2**63 - 1 into 9.223372036854776e+18 (2**63, past what a signed 64-bit integer
    holds, and code generators copy it): integer schemas get their exact bounds back."""
    if isinstance(node, list):
        for item in node:
            _exact_integer_bounds(item)
    if not isinstance(node, dict):
        return
    if node.get("type") == "integer":
        if node.get("maximum") == float(MAX_THRESHOLD):
            node["maximum"] = MAX_THRESHOLD
        if isinstance(node.get("minimum"), float) and node["minimum"].is_integer():
            node["minimum"] = int(node["minimum"])
    for value in node.values():
        _exact_integer_bounds(value)


def _state_what_fastapi_cannot(paths: dict[str, Any]) -> None:
    """- Every M2M API call needs the bearer token *and* the API key: one security requirement
      naming both (FastAPI lists each scheme as an alternative, which generated clients and
      Swagger UI read as "either"). The sandbox's control API needs none, said explicitly.
    - ``GET /requests/{tracking_number}`` never answers 422: its path only matches a UUID, and
      anything else is a 404.
    """
    for path, operations in paths.items():
        if path.startswith("/sandbox/"):
            for operation in operations.values():
                operation["security"] = []  # none: loopback only (see m2m.api.sandbox)
        if not path.startswith(M2M_PREFIX + "/"):
            continue
        for operation in operations.values():
            operation["security"] = CALLER_SECURITY
    paths[M2M_PREFIX + "/requests/{tracking_number}"]["get"]["responses"].pop("422", None)
