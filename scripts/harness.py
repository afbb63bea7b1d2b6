"""What the end-to-end scripts (``bench_lifecycle.py``, ``chaos.py``) share: a fresh database,
the real ``m2m`` processes, SIMs imported with the admin CLI, a callback receiver and the API
calls they make. Everything runs as a user would run it: subprocesses of the installed ``m2m``
command talking HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy import Engine, create_engine, text

from m2m.identifiers import luhn_check_digit
from m2m.storage.engine import make_engine

M2M = str(Path(sys.executable).parent / "m2m")
API = "/m2m/1.0.0"
CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"  # public sandbox credentials (README)
API_KEY = "sandbox-api-key"
CALLBACK_TOKEN = "bench-callback-token"
# Far from the demo SIMs (MSISDN 32470000001-100, ICCID 893201700000000000xx, IMSI 20601100000xxxx).
FIRST_MSISDN = 32_480_000_000
POSTGRES_ADMIN_URL = os.environ.get(
    "M2M_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# --- the SIMs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sim:
    iccid: str
    imsi: str
    msisdn: str


def bench_sim(n: int) -> Sim:
    iccid = f"893201{800_000_000_000 + n:012d}"  # + the Luhn check digit: 19 digits
    return Sim(
        iccid=iccid + str(luhn_check_digit(iccid)),
        imsi=f"20601{2_000_000_000 + n:010d}",
        msisdn=str(FIRST_MSISDN + n),
    )


def write_csv(path: Path, sims: list[Sim], state: str = "Active") -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["iccid", "imsi", "msisdn", "state"])
        writer.writerows([sim.iccid, sim.imsi, sim.msisdn, state] for sim in sims)


# --- a fresh database ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Workspace:
    directory: Path  # logs, CSV files; the SQLite file too
    database_url: str

    def engine(self) -> Engine:
        return make_engine(self.database_url)


@contextlib.contextmanager
def workspace(database: str, keep: bool, prefix: str) -> Iterator[Workspace]:
    """A temporary directory and a new, empty database: ``sqlite`` (a file in the directory) or
    ``postgresql`` (a database created on ``M2M_TEST_POSTGRES_URL``'s server, dropped after)."""
    directory = Path(tempfile.mkdtemp(prefix=f"m2m-{prefix}-"))
    name = f"m2m_{prefix.replace('-', '_')}_{uuid.uuid4().hex[:10]}"
    admin = None
    if database == "postgresql":
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin.url.set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{directory / 'm2m.db'}"
    try:
        yield Workspace(directory, url)
    finally:
        if keep:
            print(f"  kept: {directory} and {url}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if admin is not None:
            admin.dispose()


# --- the m2m processes --------------------------------------------------------------------------


def m2m_env(space: Workspace, extra: dict[str, str]) -> dict[str, str]:
    """This environment without its M2M_* settings, then the workspace's, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2M_")}
    return {
        **env,
        "M2M_SANDBOX": "true",
        "M2M_DATA_DIR": str(space.directory),
        "M2M_DATABASE_URL": space.database_url,
        **extra,
    }


def m2m_cli(env: dict[str, str], *args: str) -> str:
    """Run ``m2m ARGS`` with ``env``; its standard output, or RuntimeError with what it said."""
    done = subprocess.run(
        [M2M, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"m2m {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def sandbox_account_id(env: dict[str, str]) -> int:
    accounts = json.loads(m2m_cli(env, "admin", "accounts", "list", "--json"))
    return next(int(a["id"]) for a in accounts if a["is_sandbox"])


def seed_sims(env: dict[str, str], space: Workspace, sims: list[Sim]) -> None:
    """Import ``sims`` (Active) into the sandbox account with the admin CLI."""
    source = space.directory / "sims.csv"
    write_csv(source, sims)
    account = str(sandbox_account_id(env))
    report = json.loads(
        m2m_cli(env, "admin", "sims", "import", str(source), "--account", account, "--json")
    )
    if report["imported"] != len(sims):
        raise RuntimeError(f"import: {report}")


@dataclass
class Process:
    """A running ``m2m`` command, its output in a log file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    port: int | None = None  # where an API process listens
    popen: subprocess.Popen[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.start()

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [M2M, *self.args],
                env=self.env,
                cwd=self.log_path.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye, as a crash or the OOM killer would."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        """SIGTERM, then wait for a clean exit (kill after 30 s)."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"{self.args[0]} ignored SIGTERM for 30 s; killing it", file=sys.stderr)
                self.kill()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def start_api(space: Workspace, env: dict[str, str], *, worker: bool, port: int = 0) -> Process:
    """``m2m serve --sandbox`` (it migrates and seeds), with or without its embedded worker."""
    port = port or free_port()
    args = ["serve", "--sandbox", "--port", str(port), "--worker" if worker else "--no-worker"]
    return Process(args, env, space.directory / f"api-{port}.log", port)


def start_worker(space: Workspace, env: dict[str, str], number: int) -> Process:
    return Process(["worker"], env, space.directory / f"worker-{number}.log")


async def wait_until_up(session: aiohttp.ClientSession, api: Process, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{api.base_url}/openapi.json") as response:
                if response.status == 200:
                    return
        if not api.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start:\n{api.log_tail()}")
        await asyncio.sleep(0.1)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (all its threads), where /proc exists."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the callback receiver ----------------------------------------------------------------------


@dataclass
class Receiver:
    """Accepts callbacks, keeping the first message per webhook-id, until ``expected`` arrived."""

    expected: int
    url: str = ""
    messages: dict[str, tuple[str | None, bytes]] = field(default_factory=dict)
    duplicates: int = 0
    last_new_at: float = 0.0  # perf_counter() when the latest distinct webhook-id arrived
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        webhook_id = request.headers.get("webhook-id", "")
        if webhook_id in self.messages:
            self.duplicates += 1
        else:
            self.messages[webhook_id] = (request.headers.get("x-callback-token"), body)
            self.last_new_at = time.perf_counter()
            if len(self.messages) >= self.expected:
                self.done.set()
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/callback", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port, backlog=1024).start()
        self.url = f"http://127.0.0.1:{port}/callback"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def wait_for_callbacks(receiver: Receiver) -> None:
    """Until every callback arrived, with a progress line every 5 s (the time limit is the
    caller's)."""
    waiter = asyncio.ensure_future(receiver.done.wait())
    try:
        while not waiter.done():
            await asyncio.wait({waiter}, timeout=5)
            if not waiter.done():
                print(f"  … {len(receiver.messages)} callbacks", file=sys.stderr)
    finally:
        waiter.cancel()


# --- the API calls ------------------------------------------------------------------------------


async def get_token(session: aiohttp.ClientSession, url: str) -> str:
    params = {
        "grant_type": "client_credentials",
        "scope": "openid",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    async with session.post(f"{url}/token", params=params) as response:
        response.raise_for_status()
        return str((await response.json())["access_token"])


def api_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "x-api-key": API_KEY}


async def configure_callback(
    session: aiohttp.ClientSession, url: str, token: str, callback_url: str
) -> None:
    async with session.post(
        f"{url}{API}/configure/callback", json={"url": callback_url}, headers=api_headers(token)
    ) as response:
        if response.status != 204:
            raise RuntimeError(f"configure/callback: {response.status} {await response.text()}")


def devices_body(sims: list[Sim]) -> bytes:
    return json.dumps(
        [{"identifier": sim.msisdn, "identifierType": "MSISDN"} for sim in sims]
    ).encode()


async def request_operation(
    session: aiohttp.ClientSession, url: str, token: str, operation: str, body: bytes
) -> str:
    """POST a lifecycle request; its TrackingNumber."""
    headers = {
        **api_headers(token),
        "Content-Type": "application/json",
        "x-callback-token": CALLBACK_TOKEN,
    }
    async with session.post(
        f"{url}{API}/requests/{operation}", data=body, headers=headers
    ) as response:
        if response.status != 202:
            raise RuntimeError(f"{operation}: {response.status} {await response.text()}")
        return str((await response.json())["TrackingNumber"])
