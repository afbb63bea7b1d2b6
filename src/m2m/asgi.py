"""``create_app(settings)``: the ASGI application ``m2m serve`` runs — the M2M API, the console
under ``/console``, and (with ``settings.embedded_worker``) a worker while it is up — wired from
explicit dependencies. This is the top of the web layer: the API and the console are built
here over one ``Services`` and never import each other."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from sqlalchemy import Engine

from m2m import logs, metrics
from m2m.api import callback, oauth_params, operator_usage, sim_updates
from m2m.api.app import create_api
from m2m.api.error_handlers import M2M_PREFIX
from m2m.api.requests import max_body_bytes
from m2m.clock import Clock, SystemClock
from m2m.console import web
from m2m.console.app import create_console
from m2m.gc_tuning import settle_after_startup
from m2m.http_limits import BodyLimit, BodyLimits
from m2m.lifecycle import Operation
from m2m.network import NetworkAdapter
from m2m.network_faults import with_faults
from m2m.observe import Observe
from m2m.sandbox_usage import simulated_usage
from m2m.security_headers import SecurityHeaders
from m2m.services import build_services
from m2m.settings import Settings
from m2m.worker_setup import build_adapter, running_worker

FAVICON = web.HERE / "static" / "favicon.svg"
# A body on a route that takes none (a GET, an unknown path) is never read; this only bounds
# what a Content-Length may announce.
DEFAULT_BODY_LIMIT = BodyLimit(64 * 1024)
SCENARIO_MAX_BYTES = 4 * 1024 * 1024  # a sandbox scenario: up to some 10,000 SIMs


def app_from_environment() -> FastAPI:
    """The app of one of ``m2m serve --processes N``'s processes: settings from the
    environment, its own engine; the parent process has migrated the database already."""
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    if os.environ.get("M2M_SERVE_ACCESS_LOG") == "false":  # serve --no-access-log
        logging.getLogger("m2m.access").setLevel(logging.WARNING)
    return create_app(settings, settle_gc=True)


def body_limits(settings: Settings) -> list[tuple[str, BodyLimit]]:
    """Each route's body limit: what its largest valid body can need."""
    devices = settings.max_devices_per_request
    lifecycle = BodyLimit(
        max_body_bytes(devices),
        "too_many_devices",
        f"The body is larger than {{max_bytes}} bytes; at most {devices} devices are accepted "
        "in one request.",
    )
    form = BodyLimit(oauth_params.MAX_FORM_BYTES)
    return [
        ("/token", form),
        ("/revoke", form),
        (f"{M2M_PREFIX}/configure/callback", BodyLimit(callback.MAX_BODY_BYTES)),
        (f"{M2M_PREFIX}/simcards", BodyLimit(sim_updates.MAX_PATCH_BYTES)),
        *((f"{M2M_PREFIX}/requests/{operation.value}", lifecycle) for operation in Operation),
        (web.PREFIX, BodyLimit(web.MAX_FORM_BYTES)),
        ("/sandbox/scenario", BodyLimit(SCENARIO_MAX_BYTES)),
        (f"{operator_usage.PREFIX}/usage", BodyLimit(operator_usage.MAX_BODY_BYTES)),
    ]


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
    adapter: NetworkAdapter | None = None,
    settle_gc: bool = False,
) -> FastAPI:
    """The HTTP app; with ``settings.embedded_worker`` it runs a worker while it is up.
    ``settle_gc``: a server process's own app (``m2m serve``) sets the garbage collector for
    serving once started (``m2m.gc_tuning``); an app built in a test process does not."""
    engine = engine or settings.make_engine()
    clock = clock or SystemClock()
    services = build_services(settings, engine, clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        usage: AbstractAsyncContextManager[object] = (
            simulated_usage(engine, services.clock)
            if settings.sandbox and settings.sandbox_usage
            else nullcontext()
        )
        async with usage, with_worker(app):
            if settle_gc:
                settle_after_startup()
            yield

    @asynccontextmanager
    async def with_worker(_app: FastAPI) -> AsyncIterator[None]:
        if not settings.embedded_worker:
            yield
            return
        controls = services.sandbox
        network = adapter or build_adapter(settings)
        async with running_worker(
            settings,
            engine,
            services.clock,  # the sandbox's own, which the control API moves
            with_faults(network, controls.faults) if controls else network,
            controls.sent if controls else None,
        ) as worker:
            services.worker = worker
            try:
                yield
            finally:
                services.worker = None

    app = create_api(services, lifespan)
    app.mount("/console", create_console(services))

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=303)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        # Browsers ask for it before reading the page's <link rel="icon">: a 404 is a console
        # error on every first visit.
        return FileResponse(FAVICON, media_type="image/svg+xml")

    # Outermost last: the headers go on every answer, the 413 included; bodies are bounded before
    # any route (or the HTTPS check) runs.
    app.add_middleware(BodyLimits, routes=body_limits(settings), default=DEFAULT_BODY_LIMIT)
    app.add_middleware(
        SecurityHeaders, hsts_max_age=None if settings.sandbox else settings.hsts_max_age_seconds
    )
    # Outermost: every answer, even one refused before any route runs, has its id, its log
    # line and its count.
    app.add_middleware(
        Observe,
        count=settings.metrics_enabled,
        pool_in_use=metrics.connections_in_use(services.engine, services.reads),
    )
    return app
