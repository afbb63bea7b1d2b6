"""What the scripts share: a fresh database (SQLite or PostgreSQL), SIM import files, the real
``m2m`` processes (and other servers, started and stopped the same way), the admin CLI, a callback
receiver and the API calls they make.

``bench_lifecycle.py``, ``chaos.py`` and ``bench_http.py`` run everything as a user would run it:
subprocesses of the installed ``m2m`` command talking HTTP on loopback. ``bench_import.py``,
``bench_asgi.py`` and ``bench_console.py`` work in-process and take only a fresh database from
here (and ``bench_import.py`` the import file's writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text

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

SIM_COLUMNS = ("iccid", "imsi", "msisdn", "state", "cost_center", "profile")


@dataclass(frozen=True)
class Sim:
    """A line of an import file (SIM_COLUMNS)."""

    iccid: str
    imsi: str
    msisdn: str
    state: str = "Active"
    cost_center: str = ""
    profile: str = ""  # the profile document as JSON; empty: none

    def row(self) -> list[str]:
        return [self.iccid, self.imsi, self.msisdn, self.state, self.cost_center, self.profile]


def iccid(payload: str) -> str:
    """``payload`` (18 digits) and its Luhn check digit: a valid 19-digit ICCID."""
    return payload + str(luhn_check_digit(payload))


def bench_sim(n: int, series: int = 0) -> Sim:
    """The ``n``-th SIM of a series (0: bench_lifecycle.py's and chaos.py's; 1: bench_http.py's,
    which its ``--reuse`` databases hold). Each series numbers its MSISDNs from FIRST_MSISDN."""
    return Sim(
        iccid=iccid(f"893201{800_000_000_000 + series * 100_000_000_000 + n:012d}"),
        imsi=f"20601{2_000_000_000 + series * 1_000_000_000 + n:010d}",
        msisdn=str(FIRST_MSISDN + n),
    )


def write_csv(
    path: Path, rows: Iterable[Sequence[str]], columns: Sequence[str] = SIM_COLUMNS
) -> None:
    """An import file: the header, then ``rows`` (an iterator keeps a million of them out of
    memory)."""
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        writer.writerows(rows)


# --- a fresh database ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Workspace:
    directory: Path  # logs, CSV files; the SQLite file too
    database_url: str

    @property
    def database(self) -> str:
        """The SQLite file's path, or the PostgreSQL database's name."""
        return str(make_url(self.database_url).database)

    def engine(self) -> Engine:
        return make_engine(self.database_url)

    @contextlib.contextmanager
    def connect(self, *, autocommit: bool = False) -> Iterator[Connection]:
        """A connection to the database; its engine is disposed after, so that no session stays
        (a PostgreSQL database with one cannot be dropped, nor copied as a template)."""
        engine = self.engine()
        try:
            with engine.connect() as conn:
                if autocommit:
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
        finally:
            engine.dispose()


@contextlib.contextmanager
def postgres_server(url: str) -> Iterator[Connection]:
    """A connection in autocommit to the server of ``url``, for CREATE and DROP DATABASE."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            yield conn
    finally:
        admin.dispose()


def create_database(server: Connection, name: str, template: str | None = None) -> None:
    """A new database ``name``: empty, or a copy of the database ``template``."""
    copy_of = f' TEMPLATE "{template}"' if template else ""
    server.execute(text(f'CREATE DATABASE "{name}"{copy_of}'))


def drop_database(server: Connection, name: str) -> None:
    server.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def workspace(
    database: str,
    keep: bool,
    prefix: str,
    *,
    server: str | None = None,
    template: str | None = None,
) -> Iterator[Workspace]:
    """A temporary directory and a new database: ``sqlite`` (a file in the directory) or
    ``postgresql`` (a database created on ``server``, by default M2M_TEST_POSTGRES_URL's, and
    dropped after). The database is empty, or a copy of ``template``: a SQLite file, or the name
    of a PostgreSQL database on the same server."""
    directory = Path(tempfile.mkdtemp(prefix=f"m2m-{prefix}-"))
    name = f"m2m_{prefix.replace('-', '_')}_{uuid.uuid4().hex[:10]}"
    server = server or POSTGRES_ADMIN_URL
    postgresql = database == "postgresql"
    try:
        if postgresql:
            with postgres_server(server) as conn:
                create_database(conn, name, template)
            url = make_url(server).set(database=name).render_as_string(hide_password=False)
        else:
            if template:
                shutil.copy(template, directory / "m2m.db")
            url = f"sqlite:///{directory / 'm2m.db'}"
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        yield Workspace(directory, url)
    finally:
        if keep:
            print(f"  kept: {directory} and {url}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)
            if postgresql:
                with postgres_server(server) as conn:
                    drop_database(conn, name)


def query_plan(conn: Connection, run: Callable[[Connection], object]) -> list[str]:
    """The plan of the last statement ``run`` executes on ``conn`` (EXPLAIN on PostgreSQL,
    EXPLAIN QUERY PLAN on SQLite), one line a row, with the parameters it ran with."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", capture)
    try:
        run(conn)
    finally:
        event.remove(conn, "before_cursor_execute", capture)
    statement, parameters = captured[-1]
    prefix = "EXPLAIN " if conn.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute(prefix + statement, parameters)
        return [" ".join(str(c) for c in row) for row in cursor.fetchall()]
    finally:
        cursor.close()


# --- the m2m processes --------------------------------------------------------------------------


def m2m_env(space: Workspace, extra: dict[str, str], *, sandbox: bool = True) -> dict[str, str]:
    """This environment without its M2M_* settings, then the workspace's (and sandbox mode),
    then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2M_")}
    return {
        **env,
        **({"M2M_SANDBOX": "true"} if sandbox else {}),
        "M2M_DATA_DIR": str(space.directory),
        "M2M_DATABASE_URL": space.database_url,
        **extra,
    }


def m2m_cli(env: dict[str, str], *args: str) -> str:
    """Run ``m2m ARGS`` with ``env`` (30 minutes at most: an import of a million rows takes
    several); its standard output, or RuntimeError with what it said."""
    done = subprocess.run(
        [M2M, *args], env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"m2m {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def m2m_json(env: dict[str, str], *args: str) -> Any:
    """``m2m ARGS --json``: what it printed, parsed."""
    return json.loads(m2m_cli(env, *args, "--json"))


def sandbox_account_id(env: dict[str, str]) -> int:
    accounts = m2m_json(env, "admin", "accounts", "list")
    return next(int(a["account_id"]) for a in accounts if a["is_sandbox"])


def import_sims(env: dict[str, str], source: Path, account: int | str, expected: int) -> None:
    """``m2m admin sims import SOURCE --account ACCOUNT``; RuntimeError unless it imported all
    ``expected`` rows."""
    report = m2m_json(env, "admin", "sims", "import", str(source), "--account", str(account))
    if report["imported"] != expected:
        raise RuntimeError(f"import: {report}")


def seed_sims(env: dict[str, str], space: Workspace, sims: list[Sim]) -> None:
    """Import ``sims`` into the sandbox account with the admin CLI."""
    source = space.directory / "sims.csv"
    write_csv(source, (sim.row() for sim in sims))
    import_sims(env, source, sandbox_account_id(env), len(sims))


@dataclass
class Process:
    """A running server or ``m2m`` command (``program ARGS``), its output in a log file of its
    own (a restart adds to it)."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    port: int | None = None  # where a server listens
    program: str = M2M
    popen: subprocess.Popen[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.log_path.write_bytes(b"")
        self.start()

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [self.program, *self.args],
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

    def server_pids(self) -> list[int]:
        """The processes that serve requests (uvicorn logs each one's pid as it starts)."""
        content = self.log_path.read_text(encoding="utf-8", errors="replace")
        return [int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", content)]

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # an HTTP answer, whatever its status, means it is up
        except OSError:
            return False

    def wait_until_up(self, seconds: float, processes: int = 1) -> None:
        """Until the server answers and ``processes`` of its processes have started; else stop
        it and raise RuntimeError with the end of its log."""
        deadline = time.monotonic() + seconds
        while len(self.server_pids()) < processes or not self.answers():
            if not self.alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.log_path.stem} did not start:\n{self.log_tail()}")
            time.sleep(0.1)

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


def start_server(
    space: Workspace, env: dict[str, str], name: str, args: list[str], program: str = M2M
) -> Process:
    """``program ARGS --port P`` on a free port P, its log ``NAME-P.log`` in the workspace."""
    port = free_port()
    log_path = space.directory / f"{name}-{port}.log"
    return Process([*args, "--port", str(port)], env, log_path, port, program)


def start_api(space: Workspace, env: dict[str, str], *, worker: bool) -> Process:
    """``m2m serve --sandbox`` (it migrates and seeds), with or without its embedded worker."""
    args = ["serve", "--sandbox", "--worker" if worker else "--no-worker"]
    return start_server(space, env, "api", args)


def start_worker(space: Workspace, env: dict[str, str], number: int) -> Process:
    return Process(["worker"], env, space.directory / f"worker-{number}.log")


def cpu_seconds(pids: Iterable[int]) -> float | None:
    """User + system CPU time used so far by processes ``pids`` (all their threads; one that has
    gone counts for nothing); None where there is no /proc."""
    if not Path("/proc/self/stat").exists():
        return None
    ticks = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


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


def token_params(client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> dict[str, str]:
    """The documented query of ``POST /token``: client credentials."""
    return {
        "grant_type": "client_credentials",
        "scope": "openid",
        "client_id": client_id,
        "client_secret": client_secret,
    }


async def get_token(
    session: aiohttp.ClientSession,
    url: str,
    client_id: str = CLIENT_ID,
    client_secret: str = CLIENT_SECRET,
) -> str:
    """An access token for the sandbox's application, or the one ``client_id`` names."""
    params = token_params(client_id, client_secret)
    async with session.post(f"{url}/token", params=params) as response:
        response.raise_for_status()
        return str((await response.json())["access_token"])


def api_headers(token: str, api_key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "x-api-key": api_key}


async def configure_callback(
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    callback_url: str,
    api_key: str = API_KEY,
) -> None:
    async with session.post(
        f"{url}{API}/configure/callback",
        json={"url": callback_url},
        headers=api_headers(token, api_key),
    ) as response:
        if response.status != 204:
            raise RuntimeError(f"configure/callback: {response.status} {await response.text()}")


def devices_body(sims: list[Sim]) -> bytes:
    return json.dumps(
        [{"identifier": sim.msisdn, "identifierType": "MSISDN"} for sim in sims]
    ).encode()


async def request_operation(
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    operation: str,
    body: bytes,
    api_key: str = API_KEY,
) -> str:
    """POST a lifecycle request; its TrackingNumber."""
    headers = {
        **api_headers(token, api_key),
        "Content-Type": "application/json",
        "x-callback-token": CALLBACK_TOKEN,
    }
    async with session.post(
        f"{url}{API}/requests/{operation}", data=body, headers=headers
    ) as response:
        if response.status != 202:
            raise RuntimeError(f"{operation}: {response.status} {await response.text()}")
        return str((await response.json())["TrackingNumber"])
