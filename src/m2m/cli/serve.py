"""``m2m serve``: migrate, (in the sandbox) seed, then run the HTTP server."""

from __future__ import annotations

import json
import logging
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from fastapi import FastAPI

from m2m import logs, metrics, sandbox, scenario
from m2m.asgi import create_app
from m2m.callbacks.outbound import AddressPolicy
from m2m.cli.common import console, fail, load_settings, migrated_engine, user_errors
from m2m.clock import SystemClock
from m2m.http_head import BoundedHttpToolsProtocol
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


class _EncryptedKey(Exception):
    pass


def _refuse_a_passphrase() -> str:
    # Called only for an encrypted key. OpenSSL would otherwise prompt on the terminal, here
    # and again in uvicorn: a service started by systemd has no one to answer.
    raise _EncryptedKey


def tls_problem(certfile: Path, keyfile: Path) -> str | None:
    """Why the certificate and key cannot serve HTTPS, or None. Checked before anything starts:
    uvicorn would fail later with a traceback (FileNotFoundError, ssl.SSLError)."""
    texts = {}
    for option, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        try:
            texts[option] = path.read_bytes()
        except OSError as error:
            return f"{option} {path}: {error.strerror}"
    has_certificate = b"-----BEGIN CERTIFICATE-----" in texts["--ssl-certfile"]
    if not has_certificate and b"-----BEGIN CERTIFICATE-----" in texts["--ssl-keyfile"]:
        return (
            f"--ssl-certfile {certfile} holds no certificate, but --ssl-keyfile {keyfile} does: "
            "are the two swapped?"
        )
    if not has_certificate:
        return f"--ssl-certfile {certfile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    if b"PRIVATE KEY-----" not in texts["--ssl-keyfile"]:
        return f"--ssl-keyfile {keyfile} holds no PEM private key (-----BEGIN PRIVATE KEY-----)"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
            certfile, keyfile, password=_refuse_a_passphrase
        )
    except _EncryptedKey:
        return (
            f"--ssl-keyfile {keyfile} is encrypted; give the key unencrypted, readable only by "
            "the user that runs the server"
        )
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            return f"--ssl-keyfile {keyfile} is not the private key of --ssl-certfile {certfile}"
        return f"cannot use --ssl-certfile {certfile} with --ssl-keyfile {keyfile}: {error}"
    return None


def banner(base_url: str, callback_signing_secret: str) -> str:
    return f"""[bold green]M2M sandbox[/bold green] at {base_url}  (API docs: {base_url}/docs)

  client_id      {sandbox.CLIENT_ID}
  client_secret  {sandbox.CLIENT_SECRET}
  x-api-key      {sandbox.API_KEY}
  callbacks      signed (Standard Webhooks) with {callback_signing_secret}
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
    scenario_file: Annotated[
        Path | None,
        typer.Option(
            "--scenario",
            help="With --sandbox: start from the demo state plus this scenario (JSON: SIMs, "
            "accounts, callback, faults; see docs/testing-your-integration.md).",
        ),
    ] = None,
) -> None:
    """Run the API server (migrating the database first)."""
    settings = load_settings(
        sandbox=True if sandbox_mode else None, embedded_worker=embedded_worker
    )
    logs.configure(settings.log_format, settings.log_level)
    if not access_log:
        logging.getLogger("m2m.access").setLevel(logging.WARNING)
    loaded = load_scenario(scenario_file, settings, processes) if scenario_file else None
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise fail("give both --ssl-certfile and --ssl-keyfile, or neither")
    if ssl_certfile and ssl_keyfile and (problem := tls_problem(ssl_certfile, ssl_keyfile)):
        raise fail(problem)
    with user_errors():
        settings.check_for_production()
    check_transport(settings, tls=ssl_certfile is not None)
    engine = migrated_engine(settings)
    clock = SystemClock()
    signing: str | None = None
    with write_transaction(engine) as conn:
        if settings.sandbox:
            with user_errors():
                sandbox.check_can_seed(conn)
            if loaded is None:
                sandbox.seed(conn, clock.now())
            else:  # the scenario describes the whole state: the demo one, then its own
                sandbox.reset(conn, clock.now())
                scenario.apply(conn, loaded, clock.now())
            assert settings.secret_key is not None  # the sandbox's public key at least
            signing = sandbox.demo_signing_secret(conn, settings.secret_key.get_secret_value())
        elif account_store.find_sandbox_account(conn) is not None:
            raise fail(
                "this database holds the sandbox account, whose credentials are public; "
                "serve it with --sandbox, or use another database (M2M_DATABASE_URL)."
            )
    scheme = "https" if ssl_certfile else "http"
    shown_host = f"[{host}]" if ":" in host else host
    if settings.sandbox:
        shown = banner(f"{scheme}://{shown_host}:{port}", signing or "")
        console.print(shown, highlight=False, soft_wrap=True)
    options: dict[str, Any] = {}
    if processes == 1:
        built = create_app(settings, engine=engine, clock=clock, settle_gc=True)
        for fault in loaded.faults if loaded else ():
            built.state.services.sandbox.faults.add(fault.fault())
        app: FastAPI | str = built
    else:
        # Each process builds its app from the environment (uvicorn spawns them), so the
        # settings given as options here travel as environment variables.
        engine.dispose()
        os.environ.update(settings_environment(settings, access_log=access_log))
        app = "m2m.asgi:app_from_environment"
        options = {"factory": True, "workers": processes}
    shared = processes > 1 or metrics.multiprocess_dir() is not None
    with shared_metrics(shared and settings.metrics_enabled):
        _run_uvicorn(app, options, settings, host, port, ssl_certfile, ssl_keyfile)


@contextmanager
def shared_metrics(enabled: bool) -> Iterator[None]:
    """For several processes: a fresh directory where each writes its metrics, so that any of
    them can answer a scrape with the sum (``m2m.metrics``), removed when the server stops.
    The processes are spawned, so they see the variable before they import the client. An
    operator's own ``PROMETHEUS_MULTIPROC_DIR`` is used as given, emptied of a previous run's
    values, which would otherwise be added to this one's (also with one process)."""
    if not enabled:
        yield
        return
    given = metrics.multiprocess_dir()
    if given is not None:
        metrics.forget_other_processes(given)
        yield
        return
    directory = tempfile.mkdtemp(prefix="m2m-metrics-")
    os.environ[metrics.MULTIPROC_DIR] = directory
    try:
        yield
    finally:
        os.environ.pop(metrics.MULTIPROC_DIR, None)
        shutil.rmtree(directory, ignore_errors=True)


def _run_uvicorn(
    app: FastAPI | str,
    options: dict[str, Any],
    settings: Settings,
    host: str,
    port: int,
    ssl_certfile: Path | None,
    ssl_keyfile: Path | None,
) -> None:
    uvicorn.run(
        app,
        **options,
        host=host,
        port=port,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        proxy_headers=settings.behind_tls_proxy,
        forwarded_allow_ips=settings.forwarded_allow_ips if settings.behind_tls_proxy else None,
        log_level=settings.log_level.lower(),
        # Logging is set up by m2m.logs (its format, request ids, no credentials), in each
        # process; the access log is m2m.observe's, which knows the route and the duration.
        log_config=None,
        access_log=False,
        # The request line and headers are bounded while they arrive (see m2m.http_head).
        http=BoundedHttpToolsProtocol,
        h11_max_incomplete_event_size=settings.max_request_head_bytes,
    )


def load_scenario(path: Path, settings: Settings, processes: int) -> scenario.Scenario:
    """The scenario of ``--scenario``, checked before anything starts."""
    if not settings.sandbox:
        raise fail("--scenario is for the sandbox: add --sandbox")
    if processes > 1:
        # Its faults live in the memory of the process that serves the control API.
        raise fail("--scenario runs with one process: drop --processes")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise fail(f"--scenario {path}: {error.strerror}") from None
    except ValueError as error:
        raise fail(f"--scenario {path} is not JSON: {error}") from None
    try:
        return scenario.checked(scenario.parse(document), AddressPolicy.from_settings(settings))
    except scenario.ScenarioError as error:
        raise fail(f"--scenario {path}: {error}") from None


def settings_environment(settings: Settings, *, access_log: bool = True) -> dict[str, str]:
    """The options ``serve`` takes beside the environment, as the variables that set them."""
    return {
        "M2M_SANDBOX": "true" if settings.sandbox else "false",
        "M2M_EMBEDDED_WORKER": "true" if settings.embedded_worker else "false",
        ACCESS_LOG_VARIABLE: "true" if access_log else "false",
    }


# Not a setting (a command-line choice): how ``--no-access-log`` reaches spawned processes.
ACCESS_LOG_VARIABLE = "M2M_SERVE_ACCESS_LOG"
