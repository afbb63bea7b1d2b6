"""``m2m serve``: migrate, (in the sandbox) seed, then run the HTTP server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from fastapi import FastAPI

from m2m import logs, sandbox
from m2m.api.app import create_app
from m2m.cli.common import console, fail, load_settings, migrated_engine, user_errors
from m2m.clock import SystemClock
from m2m.settings import Settings
from m2m.storage import accounts as account_store
from m2m.storage.engine import write_transaction


def check_transport(settings: Settings, tls: bool) -> None:
    """The documented service is HTTPS-only; plain HTTP is for the sandbox or behind a proxy."""
    if settings.sandbox or tls or settings.behind_tls_proxy:
        return
    raise fail(
        "refusing to serve plain HTTP outside sandbox mode: give --ssl-certfile and "
        "--ssl-keyfile, or set M2M_BEHIND_TLS_PROXY=true when a TLS-terminating proxy "
        "forwards to this server (see docs)."
    )


def banner(base_url: str) -> str:
    return f"""[bold green]M2M sandbox[/bold green] at {base_url}  (API docs: {base_url}/docs)

  client_id      {sandbox.CLIENT_ID}
  client_secret  {sandbox.CLIENT_SECRET}
  x-api-key      {sandbox.API_KEY}
  demo SIMs      MSISDN 32470000001-050 Active, 051-090 Ready, 091-100 Deactivated
  console        {base_url}/console/  user {sandbox.DEMO_EMAIL}  password {sandbox.DEMO_PASSWORD}

First calls:
  curl -X POST '{base_url}/token?grant_type=client_credentials&scope=openid\
&client_id={sandbox.CLIENT_ID}&client_secret={sandbox.CLIENT_SECRET}'
  curl '{base_url}/m2m/1.0.0/simcards?msisdn=32470000001' \\
    -H 'x-api-key: {sandbox.API_KEY}' -H 'Authorization: Bearer <access_token>'
"""


def serve(
    sandbox_mode: Annotated[
        bool, typer.Option("--sandbox", help="Demo account with public credentials; plain HTTP.")
    ] = False,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    embedded_worker: Annotated[
        bool | None,
        typer.Option("--worker/--no-worker", help="Run a worker in each API process (default)."),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            min=1,
            help="API processes sharing the port; a dead one is restarted. PostgreSQL scales "
            "with them; SQLite serialises writes, so more than 2 rarely helps there.",
        ),
    ] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = True,
) -> None:
    """Run the API server (migrating the database first)."""
    settings = load_settings(
        sandbox=True if sandbox_mode else None, embedded_worker=embedded_worker
    )
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise fail("give both --ssl-certfile and --ssl-keyfile, or neither")
    with user_errors():
        settings.check_for_production()
    check_transport(settings, tls=ssl_certfile is not None)
    engine = migrated_engine(settings)
    clock = SystemClock()
    with write_transaction(engine) as conn:
        if settings.sandbox:
            with user_errors():
                sandbox.check_can_seed(conn)
            sandbox.seed(conn, clock.now())
        elif account_store.find_sandbox_account(conn) is not None:
            raise fail(
                "this database holds the sandbox account, whose credentials are public; "
                "serve it with --sandbox, or use another database (M2M_DATABASE_URL)."
            )
    scheme = "https" if ssl_certfile else "http"
    shown_host = f"[{host}]" if ":" in host else host
    if settings.sandbox:
        console.print(banner(f"{scheme}://{shown_host}:{port}"), highlight=False, soft_wrap=True)
    options: dict[str, Any] = {}
    if processes == 1:
        app: FastAPI | str = create_app(settings, engine=engine, clock=clock)
        logs.install()
    else:
        # Each process builds its app from the environment (uvicorn spawns them), so the
        # settings given as options here travel as environment variables.
        engine.dispose()
        os.environ.update(settings_environment(settings))
        app = "m2m.api.app:app_from_environment"
        options = {"factory": True, "workers": processes}
    uvicorn.run(
        app,
        **options,
        host=host,
        port=port,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        proxy_headers=settings.behind_tls_proxy,
        forwarded_allow_ips=settings.forwarded_allow_ips if settings.behind_tls_proxy else None,
        log_level="info",
        access_log=access_log,
    )


def settings_environment(settings: Settings) -> dict[str, str]:
    """The options ``serve`` takes beside the environment, as the variables that set them."""
    return {
        "M2M_SANDBOX": "true" if settings.sandbox else "false",
        "M2M_EMBEDDED_WORKER": "true" if settings.embedded_worker else "false",
    }
