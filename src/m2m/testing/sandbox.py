"""A running sandbox, as a test drives it: its URL and credentials, its clock, its faults, and the
callbacks it sent to a receiver on loopback.

``SandboxServer.start`` runs ``m2m serve --sandbox`` as a subprocess on a free loopback port with
a data folder of its own (so that parallel test processes never share one); everything else goes
through the control API (``/sandbox/…``), over HTTP, as a test suite in any language would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

# The sandbox's public credentials (m2m.sandbox; repeated so that loading the plugin imports
# nothing of the server).
CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - public by design
API_KEY = "sandbox-api-key"
START_TIMEOUT = 60.0
SERVE = [sys.executable, "-c", "from m2m.cli.main import main; main()", "serve"]


class SandboxError(RuntimeError):
    """The sandbox did not start, or refused a control call (the message has its answer)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Clock:
    """The sandbox's clock: token expiry, callback retries and timestamps follow it."""

    def __init__(self, server: SandboxServer) -> None:
        self._server = server

    def now(self) -> datetime:
        return datetime.fromisoformat(self._server.control("GET", "/sandbox/clock")["now"])

    def advance(self, duration: str | float) -> datetime:
        """Move forward by ``"90s"``, ``"15m"``, ``"1h"``, ``"31d"``… or a number of seconds."""
        answer = self._server.control("POST", "/sandbox/clock", {"advance": duration})
        return datetime.fromisoformat(answer["now"])

    def set(self, moment: datetime | str) -> datetime:
        """Jump to ``moment`` (aware, or RFC 3339 text with an offset)."""
        value = moment.isoformat() if isinstance(moment, datetime) else moment
        answer = self._server.control("POST", "/sandbox/clock", {"set": value})
        return datetime.fromisoformat(answer["now"])

    def realtime(self) -> None:
        self._server.control("POST", "/sandbox/clock", {"realtime": True})


class Faults:
    """Network faults: the next operations on a SIM fail, time out or slow down."""

    def __init__(self, server: SandboxServer) -> None:
        self._server = server

    def _add(self, **fault: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self._server.control("POST", "/sandbox/faults", fault)
        return answer

    def fail(
        self,
        identifier: str,
        operation: str = "*",
        *,
        message: str | None = None,
        count: int | None = None,
    ) -> dict[str, Any]:
        """Operations on ``identifier`` (ICCID, IMSI or MSISDN) fail with ``message``; only the
        next ``count`` of them when given."""
        return self._add(
            identifier=identifier, operation=operation, kind="failure", message=message, count=count
        )

    def timeout(
        self, identifier: str, operation: str = "*", *, count: int | None = None
    ) -> dict[str, Any]:
        """Operations on ``identifier`` fail as when the network does not answer."""
        return self._add(identifier=identifier, operation=operation, kind="timeout", count=count)

    def latency(
        self, identifier: str, latency_ms: int, operation: str = "*", *, count: int | None = None
    ) -> dict[str, Any]:
        return self._add(
            identifier=identifier,
            operation=operation,
            kind="latency",
            latency_ms=latency_ms,
            count=count,
        )

    def list(self) -> list[dict[str, Any]]:
        faults: list[dict[str, Any]] = self._server.control("GET", "/sandbox/faults")
        return faults

    def clear(self) -> None:
        self._server.control("DELETE", "/sandbox/faults")


class CallbackReceiver:
    """An HTTP server on loopback that collects the callbacks the sandbox sends it."""

    def __init__(self) -> None:
        self._messages: list[dict[str, Any]] = []
        self._headers: list[dict[str, str]] = []
        self._arrived = threading.Condition()
        self.status = 200  # what it answers; set 500 to make the sandbox retry
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()
                if 200 <= receiver.status < 300:
                    with receiver._arrived:
                        receiver._messages.append(json.loads(body))
                        receiver._headers.append(dict(self.headers.items()))
                        receiver._arrived.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test's output is the user's

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/callbacks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def received(self) -> list[dict[str, Any]]:
        """Every status message received (answered 2xx) since the last ``clear``."""
        with self._arrived:
            return list(self._messages)

    def clear(self) -> None:
        with self._arrived:
            self._messages.clear()
            self._headers.clear()
        self.status = 200

    def wait_for(
        self, tracking_number: str, timeout: float = 10.0, count: int = 1
    ) -> list[dict[str, Any]]:
        """The status messages of a lifecycle request, once ``count`` of them (one per device)
        have arrived; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [m for m in self._messages if m.get("trackingNumber") == tracking_number]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(found)} of {count} callbacks of {tracking_number} arrived within "
                        f"{timeout:g} s"
                    )
                self._arrived.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class SandboxServer:
    """``m2m serve --sandbox`` in a subprocess, with a callback receiver beside it."""

    client_id = CLIENT_ID
    client_secret = CLIENT_SECRET
    api_key = API_KEY

    def __init__(self, base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.base_url = base_url
        self._process = process
        self._log = log
        self._http = httpx.Client(base_url=base_url, timeout=30)
        self.clock = Clock(self)
        self.faults = Faults(self)
        self.callbacks = CallbackReceiver()

    @classmethod
    def start(cls, data_dir: Path, environment: Mapping[str, str] | None = None) -> SandboxServer:
        """A sandbox serving from ``data_dir`` (a new, empty folder) on a free loopback port."""
        port = _free_port()
        env = {k: v for k, v in (environment or os.environ).items() if not k.startswith("M2M_")}
        env.update(
            M2M_DATA_DIR=str(data_dir),
            M2M_WORKER_POLL_SECONDS="0.05",  # quick to notice a moved clock's due retries
            M2M_SIMULATOR_LATENCY_SECONDS="0",
        )
        log = data_dir / "sandbox.log"
        with log.open("wb") as output:
            # This interpreter, so the sandbox is the m2m the tests import (a virtualenv's
            # scripts need not be on PATH); the arguments are all ours.
            process = subprocess.Popen(  # noqa: S603
                [*SERVE, "--sandbox", "--no-access-log", "--port", str(port)],
                env=env,
                cwd=data_dir,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        server = cls(f"http://127.0.0.1:{port}", process, log)
        server._wait_until_up()
        return server

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if self._http.get("/sandbox/clock").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                output = self._log.read_text(errors="replace")[-3000:]
                raise SandboxError(f"the sandbox did not start:\n{output}")
            time.sleep(0.05)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """A control API call; its JSON answer (None for 204)."""
        answer = self._http.request(method, path, json=body)
        if answer.status_code >= 400:
            raise SandboxError(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json() if answer.content else None

    def reset(self) -> None:
        """The documented demo state, real time, no faults; this receiver as the demo
        account's callback URL, and nothing received."""
        self.load({})

    def load(self, scenario: Mapping[str, Any]) -> None:
        """Reset, then ``scenario`` (see docs/testing-your-integration.md); the callback URL is
        this receiver's unless the scenario names one."""
        document = {"callback": {"url": self.callbacks.url}, **scenario}
        self.control("POST", "/sandbox/scenario", document)
        self.callbacks.clear()

    def deliveries(self, tracking_number: str | None = None) -> list[dict[str, Any]]:
        """Every callback attempt since the last reset (URL, headers, body, the answer)."""
        query = f"?tracking_number={tracking_number}" if tracking_number else ""
        page: dict[str, Any] = self.control("GET", f"/sandbox/deliveries{query}")
        deliveries: list[dict[str, Any]] = page["deliveries"]
        return deliveries

    def wait_for_deliveries(
        self, tracking_number: str, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """``deliveries(tracking_number)`` once it holds ``count`` attempts; AssertionError
        after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while len(found := self.deliveries(tracking_number)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(found)} of {count} callback attempts of {tracking_number} within "
                    f"{timeout:g} s"
                )
            time.sleep(0.05)
        return found

    def token(self) -> str:
        """An access token of the demo application (``POST /token``)."""
        answer = self._http.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def stop(self) -> None:
        self._http.close()
        self.callbacks.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
