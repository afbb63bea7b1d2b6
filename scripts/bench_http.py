#!/usr/bin/env python3
"""HTTP benchmark of the read path: ``GET /m2m/1.0.0/simcards?msisdn=…`` and ``POST /token``.

    .venv/bin/python scripts/bench_http.py [--sims N] [--databases sqlite,postgresql]
        [--processes 1,2] [--duration S] [--connections C] [--threads T]
        [--reuse DIR] [--postgres-url URL] [--keep]

For each database it sets everything up as a user would, with the ``m2m`` CLI: a fresh SQLite
data directory (or a fresh PostgreSQL database ``m2m_bench_<random>`` created on the server of
``--postgres-url`` and dropped at the end), migrations, an account with its API key, an OAuth2
application, and N SIMs (default 1,000,000, each with a full profile document) imported from CSV
with ``m2m admin sims import``. ``--reuse DIR`` keeps the imported database between runs (a
SQLite file copied into each run's fresh directory; a PostgreSQL template database cloned with
``CREATE DATABASE … TEMPLATE``), which saves the import.

Then, for each process count, it runs with wrk (``/usr/bin/wrk``; ``apt-get install -y wrk``):

1. a bare FastAPI hello-world served the same way (the same uvicorn, the same number of
   processes, no access log, proxy headers on) — the ceiling of this machine and stack;
2. ``m2m serve --no-worker --no-access-log --processes P`` (behind-a-TLS-proxy mode, so wrk sends
   ``X-Forwarded-Proto: https`` as a proxy would), then ``GET /simcards`` with a random MSISDN
   among the N per request, the bearer token and the x-api-key;
3. the resident memory (VmRSS, and the peak VmHWM) of each server process after that load;
4. ``POST /token`` with the documented query-string credentials. The single-active-token rule
   makes every call after the first return the same token: that common path is what is measured.

It prints req/s and latency percentiles of each run, the ratio to the hello-world, and a summary
table. Every response must be 200 (wrk counts the others); otherwise the script exits with 1.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from m2m.identifiers import luhn_check_digit

BIN = Path(sys.executable).parent
M2M = str(BIN / "m2m")
UVICORN = str(BIN / "uvicorn")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
FIRST_MSISDN = 32_480_000_000
API = "/m2m/1.0.0"
STATES = ["Active", "Active", "Active", "Ready", "Deactivated"]
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}  # what the TLS-terminating proxy would add


# --- the SIMs -----------------------------------------------------------------------------------


def sim_profile(n: int) -> dict[str, Any]:
    """A full profile document (every documented field set), like the sandbox's demo SIMs."""
    return {
        "AccessPoints": [
            {
                "Code": "m2m.bench.example",
                "Properties": {
                    "StaticIP": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
                    "UserName": f"device{n:07d}",
                    "CustomName": "Fleet APN",
                },
            }
        ],
        "CustomFields": {
            "Custom Field 1": "Smart meters",
            "Custom Field 2": f"Site {n % 97}",
            "Custom Field 3": f"Asset {n:07d}",
            **{f"Custom Field {k}": "" for k in range(4, 8)},
        },
        "DataService": {
            "Plan": {"Code": "M2M-DATA-1GB", "Description": "M2M Data 1 GB", "ServiceType": "Data"},
            "ServiceAreas": [{"Code": "BE", "Description": "Belgium"}],
            "Features": [{"Code": "LTE-M", "Enabled": True}, {"Code": "NB-IOT", "Enabled": False}],
            "DailyTreshold": 1000,
            "MonthlyTreshold": 30000,
        },
        "SMSService": {
            "PlanCode": "M2M-SMS-50",
            "ServiceAreas": [{"Code": "BE", "Description": "Belgium"}],
            "FeatureCodes": ["MO-SMS", "MT-SMS"],
            "DailyTreshold": 10,
            "MonthlyTreshold": 50,
        },
        "VoiceService": {
            "PlanCode": "M2M-VOICE-NONE",
            "ServiceAreas": [],
            "FeatureCodes": ["VOICE-BARRED"],
            "DailyTreshold": 0,
            "MonthlyTreshold": 0,
        },
    }


def write_csv(path: Path, sims: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["iccid", "imsi", "msisdn", "state", "cost_center", "profile"])
        for n in range(sims):
            iccid = f"893201{900_000_000_000 + n:012d}"
            writer.writerow(
                [
                    iccid + str(luhn_check_digit(iccid)),
                    f"20601{3_000_000_000 + n:010d}",
                    str(FIRST_MSISDN + n),
                    STATES[n % len(STATES)],
                    f"CC-{n % 50}",
                    json.dumps(sim_profile(n), separators=(",", ":")),
                ]
            )


# --- databases ----------------------------------------------------------------------------------


@dataclass
class Database:
    """A database ready to serve: how to reach it, and the benchmark account's credentials."""

    kind: str
    env: dict[str, str]  # M2M_* settings that point m2m at it
    client_id: str = ""
    client_secret: str = ""
    api_key: str = ""
    cleanup: list[Any] = field(default_factory=list)

    def credentials(self) -> dict[str, str]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "api_key": self.api_key,
        }


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2M_")}
    env["M2M_SECRET_KEY"] = secrets.token_urlsafe(48)
    env["M2M_BEHIND_TLS_PROXY"] = "true"
    return env


def m2m_cli(env: dict[str, str], *args: str, timeout: float = 1800) -> Any:
    done = subprocess.run(
        [M2M, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"m2m {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout) if "--json" in args else done.stdout


def populate(db: Database, work_dir: Path, sims: int) -> None:
    """Migrate, create the account, its app and the SIMs through the admin CLI."""
    env = {**base_env(), **db.env}
    m2m_cli(env, "db", "upgrade")
    account = m2m_cli(env, "admin", "accounts", "create", "Benchmark", "--json")
    app = m2m_cli(env, "admin", "apps", "create", "--account", str(account["account_id"]), "--json")
    db.api_key, db.client_id, db.client_secret = (
        account["api_key"],
        app["client_id"],
        app["client_secret"],
    )
    source = work_dir / "sims.csv"
    started = time.perf_counter()
    write_csv(source, sims)
    log(f"  generated {sims:,} rows ({source.stat().st_size / 1e6:,.0f} MB) in {elapsed(started)}")
    started = time.perf_counter()
    args = ("admin", "sims", "import", str(source), "--account", str(account["account_id"]))
    report = m2m_cli(env, *args, "--json")
    if report["imported"] != sims:
        raise RuntimeError(f"import: {report}")
    log(f"  imported {sims:,} SIMs in {elapsed(started)}")
    source.unlink()


def sqlite_database(work_dir: Path, sims: int, reuse: Path | None) -> Database:
    data_dir = work_dir / "data"
    data_dir.mkdir()
    db = Database("sqlite", {"M2M_DATA_DIR": str(data_dir)})
    cached = reuse / f"sqlite-{sims}" if reuse else None
    if cached and (cached / "m2m.db").exists():
        log(f"  copying the cached database from {cached}")
        shutil.copy(cached / "m2m.db", data_dir / "m2m.db")
        db.__dict__.update(json.loads((cached / "credentials.json").read_text()))
        return db
    populate(db, work_dir, sims)
    if cached:
        cached.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_dir / "m2m.db", cached / "m2m.db")
        (cached / "credentials.json").write_text(json.dumps(db.credentials()))
    return db


def postgres_database(work_dir: Path, sims: int, reuse: Path | None, admin_url: str) -> Database:
    admin = create_engine(
        make_url(admin_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    name = f"m2m_bench_{secrets.token_hex(4)}"
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    db = Database("postgresql", {"M2M_DATABASE_URL": url})
    cache_name = f"m2m_bench_cache_{sims}"
    marker = reuse / f"postgresql-{sims}.json" if reuse else None
    with admin.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": cache_name}
        ).first()
        if marker and marker.exists() and exists:
            log(f"  cloning the cached database {cache_name}")
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{cache_name}"'))
            db.__dict__.update(json.loads(marker.read_text()))
        else:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        if not db.client_id:
            populate(db, work_dir, sims)
            vacuum_analyze(url)
            if marker:
                keep_as_template(admin, name, cache_name, marker, db)
    except BaseException:
        drop_postgres(admin, name)
        raise
    db.cleanup.append(lambda: drop_postgres(admin, name))
    return db


def vacuum_analyze(url: str) -> None:
    """Fresh statistics, as autovacuum would gather them soon after a bulk import."""
    engine = create_engine(
        make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()  # no session may remain on a database to be copied as a template


def keep_as_template(admin: Any, name: str, cache_name: str, marker: Path, db: Database) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{cache_name}"'))
        conn.execute(text(f'CREATE DATABASE "{cache_name}" TEMPLATE "{name}"'))
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(db.credentials()))


def drop_postgres(admin: Any, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# --- servers ------------------------------------------------------------------------------------

HELLO_APP = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello():
    return {"message": "Hello World"}
"""


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    processes: int

    def log_tail(self, lines: int = 30) -> str:
        content = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(content.splitlines()[-lines:])

    def worker_pids(self) -> list[int]:
        """The processes that serve requests (uvicorn logs each one's pid as it starts)."""
        content = self.log_path.read_text(encoding="utf-8", errors="replace")
        return [int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", content)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(name: str, command: list[str], env: dict[str, str], cwd: Path, processes: int) -> Server:
    port = free_port()
    log_path = cwd / f"{name}.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(name, process, f"http://127.0.0.1:{port}", log_path, processes)
    deadline = time.monotonic() + 120
    while len(server.worker_pids()) < processes or not answers(server.base_url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(server)
            raise RuntimeError(f"{name} did not start:\n{server.log_tail()}")
        time.sleep(0.2)
    return server


def answers(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP answer, whatever its status, means it is up
    except OSError:
        return False


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def start_hello(work_dir: Path, processes: int) -> Server:
    (work_dir / "hello_app.py").write_text(HELLO_APP)
    command = [UVICORN, "hello_app:app", "--app-dir", str(work_dir), "--workers", str(processes)]
    command += ["--no-access-log", "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"]
    return start("hello", command, base_env(), work_dir, processes)


def start_m2m(db: Database, work_dir: Path, processes: int) -> Server:
    command = [M2M, "serve", "--no-worker", "--no-access-log", "--processes", str(processes)]
    return start("m2m", command, {**base_env(), **db.env}, work_dir, processes)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes (all their threads)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):  # a backend may have gone
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of a process, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


# --- wrk ----------------------------------------------------------------------------------------

# Prints the run's numbers as one JSON line after wrk's own report. Latencies are microseconds.
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,'
    .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def headers_lua(headers: dict[str, str]) -> str:
    return "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())


def simcards_lua(sims: int, token: str, api_key: str) -> str:
    headers = {**PROXY_HEADERS, "Authorization": f"Bearer {token}", "x-api-key": api_key}
    headers |= {"Accept": "application/json"}
    return f"""{headers_lua(headers)}
local first, count = {FIRST_MSISDN}, {sims}
local counter = 0
setup = function(thread) counter = counter + 1; thread:set("seed", counter) end
init = function(args) math.randomseed(os.time() * 1000 + seed) end
request = function()
  local msisdn = first + math.random(0, count - 1)
  return wrk.format("GET", string.format("{API}/simcards?msisdn=%d", msisdn))
end
{WRK_DONE}"""


def token_lua(db: Database) -> str:
    query = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "scope": "openid",
            "client_id": db.client_id,
            "client_secret": db.client_secret,
            "Accept": "application/json",
        }
    )
    headers = {**PROXY_HEADERS, "Content-Type": "application/x-www-form-urlencoded"}
    return f"""{headers_lua(headers)}
wrk.method = "POST"
wrk.path = "/token?{query}"
{WRK_DONE}"""


def hello_lua() -> str:
    return headers_lua(PROXY_HEADERS) + WRK_DONE


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    cpu_ms: float  # server CPU time per request, all its processes
    database_cpu_ms: float  # PostgreSQL's backends serving the server, per request
    errors: dict[str, int]

    def line(self) -> str:
        bad = {k: v for k, v in self.errors.items() if v}
        return (
            f"{self.rps:8,.0f} req/s  p50 {self.p50_ms:6.1f} ms  p90 {self.p90_ms:6.1f} ms  "
            f"p99 {self.p99_ms:6.1f} ms  max {self.max_ms:6.1f} ms  "
            f"server CPU {self.cpu_ms:.3f} ms/req"
            + (f", database {self.database_cpu_ms:.3f}" if self.database_cpu_ms else "")
            + (f"  ERRORS {bad}" if bad else "")
        )


@dataclass(frozen=True)
class Load:
    threads: int
    connections: int
    duration: float
    warmup: float


def wrk(
    base_url: str,
    script: str,
    work_dir: Path,
    load: Load,
    server_pids: list[int],
    database_pids: Callable[[], list[int]] = list,
) -> WrkResult:
    """Run wrk; also the CPU time per request of the server's processes (steadier than req/s
    on a busy machine) and of the database server's processes serving it (PostgreSQL)."""
    path = work_dir / "bench.lua"
    path.write_text(script)
    command = [WRK, f"-t{load.threads}", f"-c{load.connections}", "--latency", "-s", str(path)]
    if load.warmup > 0:  # fill the pools and caches; numbers thrown away
        subprocess.run([*command, f"-d{load.warmup:g}s", base_url], capture_output=True, check=True)
    backends = database_pids()  # connected by now
    cpu_before = cpu_seconds(server_pids), cpu_seconds(backends)
    done = subprocess.run(
        [*command, f"-d{load.duration:g}s", base_url], capture_output=True, text=True, check=True
    )
    cpu = cpu_seconds(server_pids) - cpu_before[0]
    database_cpu = cpu_seconds(backends) - cpu_before[1]
    match = re.search(r"WRK_JSON (\{.*\})", done.stdout)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{done.stdout}{done.stderr}")
    numbers = json.loads(match.group(1))
    return WrkResult(
        rps=numbers["requests"] / (numbers["duration_us"] / 1e6),
        p50_ms=numbers["p50"] / 1000,
        p90_ms=numbers["p90"] / 1000,
        p99_ms=numbers["p99"] / 1000,
        max_ms=numbers["max"] / 1000,
        requests=numbers["requests"],
        cpu_ms=cpu * 1000 / max(1, numbers["requests"]),
        database_cpu_ms=database_cpu * 1000 / max(1, numbers["requests"]),
        errors={k: numbers[k] for k in ("connect", "read", "write", "status", "timeout")},
    )


# --- the runs -----------------------------------------------------------------------------------


def database_backends(db: Database) -> list[int]:
    """The PostgreSQL server processes connected to the benchmark's database (none: SQLite)."""
    url = db.env.get("M2M_DATABASE_URL")
    if url is None:
        return []
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            query = text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return [int(pid) for pid in conn.execute(query).scalars()]
    finally:
        engine.dispose()


def request_token(base_url: str, db: Database) -> str:
    query = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "scope": "openid",
            "client_id": db.client_id,
            "client_secret": db.client_secret,
        }
    )
    request = urllib.request.Request(
        f"{base_url}/token?{query}", method="POST", headers=PROXY_HEADERS
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["access_token"])


def check_sim(base_url: str, db: Database, token: str, sims: int) -> None:
    """One lookup by hand before the load: the setup works and answers the documented shape."""
    msisdn = FIRST_MSISDN + sims - 1
    request = urllib.request.Request(
        f"{base_url}{API}/simcards?msisdn={msisdn}",
        headers={**PROXY_HEADERS, "Authorization": f"Bearer {token}", "x-api-key": db.api_key},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    if body[0]["Device"]["Identifier"] != f"20601{3_000_000_000 + sims - 1:010d}":
        raise RuntimeError(f"unexpected answer: {body}")


@dataclass
class Row:
    database: str
    processes: int
    hello: WrkResult
    simcards: WrkResult
    token: WrkResult
    memory: list[dict[str, int]]


def run(db: Database, work_dir: Path, processes: int, sims: int, load: Load) -> Row:
    hello_server = start_hello(work_dir, processes)
    try:
        hello = wrk(hello_server.base_url, hello_lua(), work_dir, load, hello_server.worker_pids())
    finally:
        stop(hello_server)
    log(f"  hello-world      {processes} process(es): {hello.line()}")
    server = start_m2m(db, work_dir, processes)
    try:
        token = request_token(server.base_url, db)
        check_sim(server.base_url, db, token, sims)
        script = simcards_lua(sims, token, db.api_key)
        pids = server.worker_pids()
        backends = partial(database_backends, db)
        simcards = wrk(server.base_url + API + "/simcards", script, work_dir, load, pids, backends)
        memory = [memory_kib(pid) for pid in server.worker_pids()]
        log(f"  GET /simcards    {processes} process(es): {simcards.line()}")
        log(f"    ratio to hello-world: {simcards.rps / hello.rps:.2f}")
        log("    memory: " + ", ".join(f"{m['VmRSS'] / 1024:.0f} MB" for m in memory))
        tokens = wrk(server.base_url + "/token", token_lua(db), work_dir, load, pids, backends)
        log(f"  POST /token      {processes} process(es): {tokens.line()}")
        if request_token(server.base_url, db) != token:
            raise RuntimeError("/token handed out a different token during the run")
    except Exception:
        log(server.log_tail())
        raise
    finally:
        stop(server)
    return Row(db.kind, processes, hello, simcards, tokens, memory)


def summary(rows: list[Row]) -> str:
    lines = [
        "| database | processes | simcards req/s | p99 ms | hello req/s | hello p99 ms | ratio "
        "| /token req/s | /token p99 ms | RSS MB per process (peak) "
        "| server CPU ms/req: simcards, hello, token | PostgreSQL CPU ms/req: simcards, token |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        memory = ", ".join(f"{m['VmRSS'] / 1024:.0f} ({m['VmHWM'] / 1024:.0f})" for m in r.memory)
        lines.append(
            f"| {r.database} | {r.processes} | {r.simcards.rps:,.0f} | {r.simcards.p99_ms:.1f} "
            f"| {r.hello.rps:,.0f} | {r.hello.p99_ms:.1f} | {r.simcards.rps / r.hello.rps:.2f} "
            f"| {r.token.rps:,.0f} | {r.token.p99_ms:.1f} | {memory} "
            f"| {r.simcards.cpu_ms:.3f}, {r.hello.cpu_ms:.3f}, {r.token.cpu_ms:.3f} "
            f"| {database_cpu(r)} |"
        )
    return "\n".join(lines)


def database_cpu(row: Row) -> str:
    if row.database != "postgresql":
        return "-"
    return f"{row.simcards.database_cpu_ms:.3f}, {row.token.database_cpu_ms:.3f}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def elapsed(started: float) -> str:
    return f"{time.perf_counter() - started:.1f} s"


@contextlib.contextmanager
def database(kind: str, work_dir: Path, args: argparse.Namespace) -> Iterator[Database]:
    started = time.perf_counter()
    log(f"{kind}: setting up {args.sims:,} SIMs")
    db = (
        sqlite_database(work_dir, args.sims, args.reuse)
        if kind == "sqlite"
        else postgres_database(work_dir, args.sims, args.reuse, args.postgres_url)
    )
    log(f"  ready in {elapsed(started)}")
    try:
        yield db
    finally:
        for cleanup in db.cleanup:
            cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=1_000_000, help="SIMs in the inventory")
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--processes", default="1,2", help="server process counts to run")
    parser.add_argument("--duration", type=float, default=15, help="seconds of each wrk run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of load before each run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--reuse", type=Path, help="keep the imported databases in DIR")
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server and role allowed to CREATE DATABASE",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--prepare", action="store_true", help="only set up the databases of --reuse, then exit"
    )
    args = parser.parse_args()
    if args.sims < 1:
        parser.error("--sims must be at least 1")
    if args.reuse:
        args.reuse = args.reuse.resolve()
    elif args.prepare:
        parser.error("--prepare needs --reuse DIR")
    load = Load(args.threads, args.connections, args.duration, args.warmup)
    counts = [int(p) for p in args.processes.split(",")]
    log(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    rows: list[Row] = []
    work_root = Path(tempfile.mkdtemp(prefix="m2m-bench-http-"))
    try:
        for kind in args.databases.split(","):
            work_dir = work_root / kind
            work_dir.mkdir()
            with database(kind, work_dir, args) as db:
                if args.prepare:
                    continue
                rows.extend(run(db, work_dir, p, args.sims, load) for p in counts)
    finally:
        if args.keep:
            log(f"kept {work_root}")
        else:
            shutil.rmtree(work_root, ignore_errors=True)
    print(summary(rows))
    failed = [r for r in rows for w in (r.hello, r.simcards, r.token) if any(w.errors.values())]
    if failed:
        log("some requests failed or were not 200 (see ERRORS above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
