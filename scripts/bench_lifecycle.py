#!/usr/bin/env python3
"""End-to-end benchmark of one bulk lifecycle request: an N-device deactivation in the sandbox.

    .venv/bin/python scripts/bench_lifecycle.py [--devices N] [--runs K] [--keep] [--timeout S]
                                                [--receiver-check] [--env NAME=VALUE ...]

Each run starts from nothing: a fresh temporary data directory (SQLite), the real server as a
subprocess (``m2m serve --sandbox``, embedded worker, network simulator with latency 0), N extra
Active SIMs imported into the sandbox account with ``m2m admin sims import``, and a callback
receiver (an aiohttp server in this script's event loop) configured as the account's callback
URL. Then it times ``POST /m2m/1.0.0/requests/deactivation`` with the N MSISDNs until the
receiver holds N distinct ``webhook-id`` headers, and prints:

- the time to the 202 answer;
- the time to the last item finished (the request's ``finished_at``, as the server records it);
- the time to the last callback received;
- devices/s end to end (N / time to the last callback);
- the server's CPU time per device over that span (where /proc exists): the server is one
  process, so its CPU time tracks the wall time when it is the bottleneck, and it is the steadier
  number to compare code changes with on a noisy machine.

With --runs K it prints each run and the medians. Every callback must say ``Success`` for one of
the imported SIMs and every one of them must end ``Deactivated``; otherwise, or when a run
(start to last callback) takes longer than --timeout seconds, it exits with status 1.
``--receiver-check`` first measures how many callbacks per second the receiver alone accepts (it
must not be the bottleneck), and ``--env M2M_WORKER_BATCH_SIZE=1000`` (repeatable) passes a
setting to the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from m2m.identifiers import luhn_check_digit

M2M = str(Path(sys.executable).parent / "m2m")
API = "/m2m/1.0.0"
CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"  # public sandbox credentials (README)
API_KEY = "sandbox-api-key"
CALLBACK_TOKEN = "bench-callback-token"
# Far from the demo SIMs (MSISDN 32470000001-100, ICCID 893201700000000000xx, IMSI 20601100000xxxx).
FIRST_MSISDN = 32_480_000_000


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


def write_csv(path: Path, sims: list[Sim]) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["iccid", "imsi", "msisdn", "state"])
        writer.writerows([sim.iccid, sim.imsi, sim.msisdn, "Active"] for sim in sims)


# --- the server and the admin CLI ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(data_dir: Path, devices: int, extra: dict[str, str]) -> dict[str, str]:
    """This environment without its M2M_* settings, then the benchmark's, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2M_")}
    return {
        **env,
        "M2M_DATA_DIR": str(data_dir),
        "M2M_SIMULATOR_LATENCY_SECONDS": "0",
        "M2M_MAX_DEVICES_PER_REQUEST": str(max(devices, 10_000)),
        **extra,
    }


def m2m_cli(env: dict[str, str], *args: str) -> str:
    """Run ``m2m ARGS`` with ``env``; its standard output, or RuntimeError with what it said."""
    done = subprocess.run(
        [M2M, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"m2m {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def sandbox_account_id(env: dict[str, str]) -> int:
    accounts = json.loads(m2m_cli(env, "admin", "accounts", "list", "--json"))
    return next(int(a["id"]) for a in accounts if a["is_sandbox"])


def seed_sims(env: dict[str, str], data_dir: Path, account_id: int, sims: list[Sim]) -> None:
    source = data_dir / "bench-sims.csv"
    write_csv(source, sims)
    args = ("admin", "sims", "import", str(source), "--account", str(account_id), "--json")
    report = json.loads(m2m_cli(env, *args))
    if report["imported"] != len(sims):
        raise RuntimeError(f"import: {report}")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    worker: subprocess.Popen[bytes] | None = None  # with --env M2M_EMBEDDED_WORKER=false

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def start_server(data_dir: Path, env: dict[str, str]) -> Server:
    port = free_port()
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [M2M, "serve", "--sandbox", "--port", str(port)],
            env=env,
            cwd=data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    worker = None
    if env.get("M2M_EMBEDDED_WORKER", "").lower() in ("false", "0"):
        # The worker in a process of its own: the API and the worker each get a core.
        with (data_dir / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [M2M, "worker"],
                env={**env, "M2M_SANDBOX": "true"},
                cwd=data_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    return Server(process, f"http://127.0.0.1:{port}", log_path, worker)


async def wait_until_up(session: aiohttp.ClientSession, server: Server, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{server.base_url}/openapi.json") as response:
                if response.status == 200:
                    return
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start:\n{server.log_tail()}")
        await asyncio.sleep(0.1)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (all its threads), where /proc exists."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(server: Server) -> float | None:
    """CPU time used so far by the server and, if it runs apart, its worker process."""
    processes = [server.process] + ([server.worker] if server.worker is not None else [])
    times = [cpu_seconds(process.pid) for process in processes]
    return None if None in times else sum(t for t in times if t is not None)


def stop_server(server: Server) -> None:
    """SIGTERM, then wait for a clean exit (kill after 30 s)."""
    if server.worker is not None and server.worker.poll() is None:
        server.worker.send_signal(signal.SIGTERM)
        server.worker.wait(timeout=30)
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print("server ignored SIGTERM for 30 s; killing it", file=sys.stderr)
            server.process.kill()
            server.process.wait()


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


async def receiver_capacity(requests: int = 10_000, concurrency: int = 64) -> float:
    """Callbacks per second the receiver accepts from a client in the same event loop (so a
    lower bound: the client's work counts against it)."""
    receiver = Receiver(expected=requests)
    await receiver.start()
    body = json.dumps({"trackingNumber": "x", "resultStatus": "Success", "messages": []}).encode()
    try:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def post(n: int) -> None:
                headers = {"webhook-id": f"msg_{n}", "Content-Type": "application/json"}
                async with session.post(receiver.url, data=body, headers=headers) as response:
                    response.raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(post(n) for n in range(requests)))
            return requests / (time.perf_counter() - started)
    finally:
        await receiver.stop()


# --- the API calls ------------------------------------------------------------------------------


async def get_token(session: aiohttp.ClientSession, base_url: str) -> str:
    params = {
        "grant_type": "client_credentials",
        "scope": "openid",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    async with session.post(f"{base_url}/token", params=params) as response:
        response.raise_for_status()
        return str((await response.json())["access_token"])


def api_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "x-api-key": API_KEY}


async def configure_callback(
    session: aiohttp.ClientSession, base_url: str, token: str, url: str
) -> None:
    async with session.post(
        f"{base_url}{API}/configure/callback", json={"url": url}, headers=api_headers(token)
    ) as response:
        if response.status != 204:
            raise RuntimeError(f"configure/callback: {response.status} {await response.text()}")


async def request_deactivation(
    session: aiohttp.ClientSession, base_url: str, token: str, body: bytes
) -> str:
    headers = {
        **api_headers(token),
        "Content-Type": "application/json",
        "x-callback-token": CALLBACK_TOKEN,
    }
    async with session.post(
        f"{base_url}{API}/requests/deactivation", data=body, headers=headers
    ) as response:
        if response.status != 202:
            raise RuntimeError(f"deactivation: {response.status} {await response.text()}")
        return str((await response.json())["TrackingNumber"])


async def wait_for_callbacks(receiver: Receiver) -> None:
    """Until every callback arrived, with a progress line every 5 s (the run's time limit is
    the caller's)."""
    waiter = asyncio.ensure_future(receiver.done.wait())
    try:
        while not waiter.done():
            await asyncio.wait({waiter}, timeout=5)
            if not waiter.done():
                print(f"  … {len(receiver.messages)} callbacks", file=sys.stderr)
    finally:
        waiter.cancel()


# --- checking the outcome -----------------------------------------------------------------------


def database(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{data_dir / 'm2m.db'}?mode=ro", uri=True)


def request_finished_at(data_dir: Path, tracking_number: str) -> float | None:
    """The request's finished_at as a POSIX timestamp (SQLite keeps naive UTC text)."""
    with contextlib.closing(database(data_dir)) as conn:
        row = conn.execute(
            "SELECT finished_at FROM lifecycle_requests WHERE tracking_number = ?",
            (tracking_number,),
        ).fetchone()
    if row is None or row[0] is None:
        return None
    return datetime.fromisoformat(row[0]).replace(tzinfo=UTC).timestamp()


def callback_problems(receiver: Receiver, tracking_number: str, sims: list[Sim]) -> list[str]:
    problems = []
    expected_devices = {sim.iccid for sim in sims}
    devices: set[str] = set()
    not_success = bad_token = other_request = 0
    for token, body in receiver.messages.values():
        message = json.loads(body)
        devices.add(message["device"]["identifier"])
        not_success += message["resultStatus"] != "Success"
        bad_token += token != CALLBACK_TOKEN
        other_request += message["trackingNumber"] != tracking_number
    if not_success:
        problems.append(f"{not_success} callbacks without resultStatus Success")
    if bad_token:
        problems.append(f"{bad_token} callbacks without the request's x-callback-token")
    if other_request:
        problems.append(f"{other_request} callbacks for another trackingNumber")
    if devices != expected_devices:
        problems.append(
            f"callbacks name {len(devices - expected_devices)} unexpected devices and miss "
            f"{len(expected_devices - devices)}"
        )
    return problems


def sim_problems(data_dir: Path, sims: list[Sim]) -> list[str]:
    wanted = {sim.msisdn for sim in sims}
    with contextlib.closing(database(data_dir)) as conn:
        rows = conn.execute("SELECT msisdn, state FROM sim_cards").fetchall()
    states: dict[str, int] = {}
    for msisdn, state in rows:
        if msisdn in wanted:
            states[state] = states.get(state, 0) + 1
    if states != {"Deactivated": len(sims)}:
        return [f"SIM states after the run: {states} (want all {len(sims)} Deactivated)"]
    return []


# --- one run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    devices: int
    accepted: float  # seconds from the POST to the 202
    items_finished: float | None  # ... to the request's finished_at (server clock = ours)
    last_callback: float  # ... to the last distinct callback received
    duplicates: int
    server_cpu: float | None  # CPU seconds the server (and worker) used, POST to last callback
    problems: list[str]

    @property
    def devices_per_second(self) -> float:
        return self.devices / self.last_callback


@contextlib.contextmanager
def data_directory(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="m2m-bench-lifecycle-"))
    try:
        yield path
    finally:
        if keep:
            print(f"  data dir kept: {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


async def measure(
    session: aiohttp.ClientSession,
    server: Server,
    data_dir: Path,
    sims: list[Sim],
) -> RunResult:
    """Configure a receiver, then time the deactivation of ``sims`` to the last callback."""
    receiver = Receiver(expected=len(sims))
    await receiver.start()
    try:
        token = await get_token(session, server.base_url)
        await configure_callback(session, server.base_url, token, receiver.url)
        body = json.dumps(
            [{"identifier": sim.msisdn, "identifierType": "MSISDN"} for sim in sims]
        ).encode()

        cpu_before = server_cpu_seconds(server)
        started_wall, started = time.time(), time.perf_counter()
        tracking_number = await request_deactivation(session, server.base_url, token, body)
        accepted = time.perf_counter() - started
        await wait_for_callbacks(receiver)
        last_callback = receiver.last_new_at - started
        cpu_after = server_cpu_seconds(server)

        finished_at = request_finished_at(data_dir, tracking_number)
        problems = callback_problems(receiver, tracking_number, sims)
        problems += sim_problems(data_dir, sims)
        if finished_at is None:
            problems.append("the request has no finished_at")
        return RunResult(
            devices=len(sims),
            accepted=accepted,
            items_finished=None if finished_at is None else finished_at - started_wall,
            last_callback=last_callback,
            duplicates=receiver.duplicates,
            server_cpu=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
            problems=problems,
        )
    finally:
        await receiver.stop()


async def run_once(args: argparse.Namespace) -> RunResult:
    """One run on a fresh data dir and server; TimeoutError after ``args.timeout`` seconds."""
    sims = [bench_sim(n) for n in range(args.devices)]
    with data_directory(args.keep) as data_dir:
        env = server_env(data_dir, args.devices, dict(args.env))
        server = start_server(data_dir, env)
        try:
            async with asyncio.timeout(args.timeout), aiohttp.ClientSession() as session:
                await wait_until_up(session, server, 60)
                account_id = await asyncio.to_thread(sandbox_account_id, env)
                await asyncio.to_thread(seed_sims, env, data_dir, account_id, sims)
                return await measure(session, server, data_dir, sims)
        except Exception:
            print(f"server log (tail):\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            stop_server(server)


# --- reporting ----------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f} s"


def describe(
    accepted: float,
    items_finished: float | None,
    last_callback: float,
    devices_per_second: float,
    cpu_per_device: float | None,
) -> str:
    return (
        f"202 after {seconds(accepted)}, items finished after {seconds(items_finished)}, "
        f"last callback after {seconds(last_callback)}, "
        f"{devices_per_second:,.0f} devices/s end to end"
        + ("" if cpu_per_device is None else f"; server CPU {cpu_per_device * 1e6:,.0f} µs/device")
    )


def describe_run(result: RunResult) -> str:
    cpu = None if result.server_cpu is None else result.server_cpu / result.devices
    return describe(
        result.accepted,
        result.items_finished,
        result.last_callback,
        result.devices_per_second,
        cpu,
    ) + (f" ({result.duplicates} duplicate callbacks)" if result.duplicates else "")


def median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def describe_medians(results: list[RunResult]) -> str:
    return describe(
        statistics.median(r.accepted for r in results),
        median([r.items_finished for r in results]),
        statistics.median(r.last_callback for r in results),
        statistics.median(r.devices_per_second for r in results),
        median([None if r.server_cpu is None else r.server_cpu / r.devices for r in results]),
    )


async def main_async(args: argparse.Namespace) -> int:
    if args.receiver_check:
        print(f"receiver alone: {await receiver_capacity():,.0f} callbacks/s")
    results: list[RunResult] = []
    failed = False
    for run in range(1, args.runs + 1):
        try:
            result = await run_once(args)
        except TimeoutError:
            print(f"run {run}: FAILED: not done after {args.timeout:g} s (--timeout)")
            return 1
        except (RuntimeError, aiohttp.ClientError) as error:
            print(f"run {run}: FAILED: {error}")
            return 1
        results.append(result)
        print(f"run {run}: {describe_run(result)}", flush=True)
        for problem in result.problems:
            print(f"run {run}: PROBLEM: {problem}")
            failed = True
    if len(results) > 1:
        print(f"median of {len(results)}: {describe_medians(results)}")
    return 1 if failed else 0


def setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.startswith("M2M_"):
        raise argparse.ArgumentTypeError(f"expected M2M_NAME=VALUE, got {text!r}")
    return name, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000, help="devices in the request")
    parser.add_argument("--runs", type=int, default=1, help="runs, each on a fresh data dir")
    parser.add_argument("--keep", action="store_true", help="keep each run's data dir")
    parser.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="give up (exit 1) when a run is not done after this many seconds",
    )
    parser.add_argument(
        "--receiver-check", action="store_true", help="first measure the receiver's capacity"
    )
    parser.add_argument(
        "--env",
        type=setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the server, e.g. M2M_WORKER_BATCH_SIZE=1000 (repeatable)",
    )
    args = parser.parse_args()
    if args.devices < 1 or args.runs < 1:
        parser.error("--devices and --runs must be at least 1")
    settings = "".join(f", {name}={value}" for name, value in args.env)
    print(f"deactivating {args.devices:,} devices, {args.runs} run(s){settings}", flush=True)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
