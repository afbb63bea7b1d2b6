"""Servers for tests to talk to: free loopback ports, the app served by uvicorn in a thread,
``m2m`` processes started as a user would (in an environment without the caller's ``M2M_*``
variables), and the app as a server without the m2m extensions."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import uvicorn
from fastapi import FastAPI
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support.api import M2M

M2M_BIN = str(Path(sys.executable).parent / "m2m")  # the installed ``m2m`` command


def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def run_server(
    app: FastAPI,
    port: int,
    *,
    lifespan: Literal["on", "off"] = "off",
    tls: tuple[Path, Path] | None = None,
) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a loopback port, in a thread; yields its base URL.
    (``lifespan="on"`` runs the app's embedded worker too; ``tls`` = (certificate, key) serves
    HTTPS.)"""
    certificate, key = (str(tls[0]), str(tls[1])) if tls else (None, None)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan=lifespan,
            ssl_certfile=certificate,
            ssl_keyfile=key,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of an ``m2m`` process: this one's without any ``M2M_*`` variable, then
    ``M2M_DATA_DIR`` and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2M_")}
    return {**env, "M2M_DATA_DIR": str(data_dir), **extra}


def run_serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``m2m serve ARGS…`` on a free port, in ``tmp_path`` (its data folder too), run to its
    end: for the tests where it refuses to start (it must exit within a minute)."""
    return subprocess.run(
        [M2M_BIN, "serve", "--port", str(free_port()), *args],
        env=clean_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def documented_only(app: FastAPI, status: int) -> ASGIApp:
    """The app as a server without the m2m extensions (the operator's, say): their GET routes
    answer ``status`` with a body that is not this API's JSON, as a gateway's might be."""
    extensions = re.compile(rf"{M2M}/requests/[^/]+|{M2M}/configure/callback")

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and extensions.fullmatch(scope["path"])
        ):
            await PlainTextResponse("Nope", status_code=status)(scope, receive, send)
            return
        await app(scope, receive, send)

    return asgi
