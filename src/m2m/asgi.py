"""``create_app(settings)``: the ASGI application ``m2m serve`` runs — the M2M API, the console
under ``/console``, and (with ``settings.embedded_worker``) a worker while it is up — wired from
explicit dependencies. This is the top of the web layer: the API and the console are built
here over one ``Services`` and never import each other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from sqlalchemy import Engine

from m2m import logs
from m2m.api.app import create_api
from m2m.clock import Clock, SystemClock
from m2m.console.app import create_console
from m2m.console.web import HERE as CONSOLE_FILES
from m2m.network import NetworkAdapter
from m2m.services import build_services
from m2m.settings import Settings
from m2m.worker_setup import running_worker

FAVICON = CONSOLE_FILES / "static" / "favicon.svg"


def app_from_environment() -> FastAPI:
    """The app of one of ``m2m serve --processes N``'s processes: settings from the
    environment, its own engine; the parent process has migrated the database already."""
    logs.install()
    return create_app(Settings())


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
    adapter: NetworkAdapter | None = None,
) -> FastAPI:
    """The HTTP app; with ``settings.embedded_worker`` it runs a worker while it is up."""
    engine = engine or settings.make_engine()
    clock = clock or SystemClock()
    services = build_services(settings, engine, clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not settings.embedded_worker:
            yield
            return
        async with running_worker(settings, engine, clock, adapter) as worker:
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

    return app
