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
import dataclasses
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import harness
from harness import API, FIRST_MSISDN
from sqlalchemy import text

UVICORN = str(Path(sys.executable).parent / "uvicorn")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
STATES = ["Active", "Active", "Active", "Ready", "Deactivated"]
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}  # what the TLS-terminating proxy would add
# A production configuration: a secret of its own, behind a TLS-terminating proxy. One account
# makes every request here, thousands a second: its rate limit is still applied to each request
# (the cost is measured) but set above the load, so that it refuses none.
SERVER_SETTINGS = {
    "M2M_SECRET_KEY": secrets.token_urlsafe(48),
    "M2M_BEHIND_TLS_PROXY": "true",
    "M2M_RATE_LIMIT_PER_SECOND": "10000000",
    "M2M_RATE_LIMIT_BURST": "10000000",
}


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


def bench_sims(count: int) -> Iterator[harness.Sim]:
    """``count`` SIMs in a mix of states, each with a cost center and a full profile document."""
    for n in range(count):
        yield dataclasses.replace(
            harness.bench_sim(n, series=1),
            state=STATES[n % len(STATES)],
            cost_center=f"CC-{n % 50}",
            profile=json.dumps(sim_profile(n), separators=(",", ":")),
        )


# --- databases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """The benchmark account's."""

    client_id: str
    client_secret: str
    api_key: str


@dataclass(frozen=True)
class Database:
    """A database ready to serve: its workspace, the settings that point m2m at it, and the
    benchmark account's credentials."""

    kind: str
    space: harness.Workspace
    env: dict[str, str]
    credentials: Credentials


def populate(space: harness.Workspace, env: dict[str, str], sims: int) -> Credentials:
    """Migrate, create the account, its app and the SIMs through the admin CLI."""
    harness.m2m_cli(env, "db", "upgrade")
    account = harness.m2m_json(env, "admin", "accounts", "create", "Benchmark")
    account_id = str(account["account_id"])
    app = harness.m2m_json(env, "admin", "apps", "create", "--account", account_id)
    source = space.directory / "sims.csv"
    started = time.perf_counter()
    harness.write_csv(source, (sim.row() for sim in bench_sims(sims)))
    log(f"  generated {sims:,} rows ({source.stat().st_size / 1e6:,.0f} MB) in {elapsed(started)}")
    started = time.perf_counter()
    harness.import_sims(env, source, account_id, sims)
    log(f"  imported {sims:,} SIMs in {elapsed(started)}")
    source.unlink()
    return Credentials(app["client_id"], app["client_secret"], account["api_key"])


def vacuum_analyze(space: harness.Workspace) -> None:
    """Fresh statistics, as autovacuum would gather them soon after a bulk import."""
    with space.connect(autocommit=True) as conn:
        conn.execute(text("VACUUM ANALYZE"))


def grow_seed(kind: str, args: argparse.Namespace) -> Cache | None:
    """The cached smaller database ``--grow-from`` names, when it exists (PostgreSQL)."""
    if kind != "postgresql" or not args.grow_from or not args.reuse:
        return None
    seed = Cache.of(kind, args.grow_from, args.reuse, args.postgres_url)
    return seed if seed.exists() else None


# The next check digit of a Luhn payload, in SQL: the digits from the right, every other one
# doubled (minus 9 when that is over 9), as m2m.identifiers.luhn_check_digit.
LUHN_SQL = """
CREATE FUNCTION pg_temp.luhn(payload text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT ((10 - sum(CASE WHEN (length(payload) - i) % 2 = 0
                         THEN (2 * d) - CASE WHEN d > 4 THEN 9 ELSE 0 END ELSE d END) % 10)
          % 10)::text
  FROM (SELECT i, substr(payload, i, 1)::int AS d FROM generate_series(1, length(payload)) i) s
$$
"""


def grow(space: harness.Workspace, seed_sims: int, sims: int) -> None:
    """From a copy of the first ``seed_sims`` SIMs to ``sims`` (a multiple): copy k of each SIM
    gets the identifiers ``k * seed_sims`` further on (ICCIDs with their check digit), so the
    MSISDNs stay one contiguous range, as an import of ``sims`` SIMs would number them. Profiles
    are the seed's (their documents repeat): the lookup reads them the same way. Five times
    faster than importing: about a minute per million SIMs on this machine."""
    if sims % seed_sims:
        raise SystemExit(f"--sims {sims:,} is not a multiple of --grow-from {seed_sims:,}")
    with space.connect(autocommit=True) as conn:
        conn.execute(text(LUHN_SQL))
        columns = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'sim_cards' ORDER BY ordinal_position"
                )
            )
        ]
        shifted = {
            "id": "id + :shift",
            "iccid": "payload || pg_temp.luhn(payload)",
            "imsi": "left(imsi, 5) || lpad((substr(imsi, 6)::bigint + :shift)::text, 10, '0')",
            "msisdn": "(msisdn::bigint + :shift)::text",
        }
        select = ", ".join(shifted.get(column, column) for column in columns)
        insert = text(
            f"INSERT INTO sim_cards ({', '.join(columns)}) SELECT {select} FROM ("
            "  SELECT *, left(iccid, 6)"
            "    || lpad((substr(iccid, 7, 12)::bigint + :shift)::text, 12, '0') AS payload"
            "  FROM sim_cards WHERE id <= :last"
            ") seed"
        )
        last = conn.execute(text("SELECT max(id) FROM sim_cards")).scalar_one()
        for copy in range(1, sims // seed_sims):
            started = time.perf_counter()
            conn.execute(insert, {"shift": copy * last, "last": last})
            log(f"  copy {copy}: {(copy + 1) * seed_sims:,} SIMs after {elapsed(started)}")
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence('sim_cards', 'id'), max(id)) FROM sim_cards")
        )


def prewarm(space: harness.Workspace) -> None:
    """The SIM table and its MSISDN index read into PostgreSQL's shared buffers (pg_prewarm, as
    long as they fit): the state of a server that has served lookups for a while, which a
    15-second run on a freshly cloned database is not."""
    started = time.perf_counter()
    with space.connect(autocommit=True) as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_prewarm"))
        pages = sum(
            conn.execute(text("SELECT pg_prewarm(:relation)"), {"relation": relation}).scalar_one()
            for relation in ("uq_sim_cards_msisdn", "sim_cards")
        )
        shared = conn.execute(text("SHOW shared_buffers")).scalar_one()
    log(f"  prewarmed {pages * 8 / 1024:,.0f} MB (shared_buffers {shared}) in {elapsed(started)}")


@dataclass(frozen=True)
class Cache:
    """What ``--reuse DIR`` keeps of an imported database: a copy of it (a SQLite file, or a
    PostgreSQL template database on the server of ``--postgres-url``) and its credentials."""

    kind: str
    copy: str
    credentials: Path
    server: str

    @classmethod
    def of(
        cls, kind: str, sims: int, reuse: Path, server: str, *, name: str = "bench_cache"
    ) -> Cache:
        """The cache of ``sims`` rows in ``reuse``; ``name`` tells one script's PostgreSQL
        copies from another's (they share the server, not the directory)."""
        if kind == "sqlite":
            folder = reuse / f"sqlite-{sims}"
            return cls(kind, str(folder / "m2m.db"), folder / "credentials.json", server)
        return cls(kind, f"m2m_{name}_{sims}", reuse / f"postgresql-{sims}.json", server)

    def announce(self) -> str:
        if self.kind == "sqlite":
            return f"copying the cached database from {Path(self.copy).parent}"
        return f"cloning the cached database {self.copy}"

    def exists(self) -> bool:
        if not self.credentials.exists():
            return False
        if self.kind == "sqlite":
            return Path(self.copy).exists()
        with harness.postgres_server(self.server) as conn:
            query = text("SELECT 1 FROM pg_database WHERE datname = :name")
            return conn.execute(query, {"name": self.copy}).first() is not None

    def save(self, space: harness.Workspace, credentials: Any) -> None:
        """Keep the database of ``space`` and ``credentials`` (a dataclass) beside it."""
        if self.kind == "sqlite":
            Path(self.copy).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(space.database, self.copy)
        else:
            with harness.postgres_server(self.server) as conn:
                harness.drop_database(conn, self.copy)
                harness.create_database(conn, self.copy, template=space.database)
        self.credentials.parent.mkdir(parents=True, exist_ok=True)
        self.credentials.write_text(json.dumps(dataclasses.asdict(credentials)))

    def load(self) -> Credentials:
        return Credentials(**json.loads(self.credentials.read_text()))


@contextlib.contextmanager
def database(kind: str, args: argparse.Namespace) -> Iterator[Database]:
    """A fresh database of ``kind`` with the benchmark's SIMs: imported, or copied from the
    ``--reuse`` cache."""
    started = time.perf_counter()
    log(f"{kind}: setting up {args.sims:,} SIMs")
    cache = Cache.of(kind, args.sims, args.reuse, args.postgres_url) if args.reuse else None
    cached = cache if cache and cache.exists() else None
    if cached:
        log(f"  {cached.announce()}")
    template = cached.copy if cached else None
    seed = grow_seed(kind, args) if not cached else None
    if seed:
        log(f"  cloning {seed.copy} ({args.grow_from:,} SIMs) to grow it")
        template = seed.copy
    with harness.workspace(
        kind, args.keep, "bench", server=args.postgres_url, template=template
    ) as space:
        env = harness.m2m_env(space, SERVER_SETTINGS, sandbox=False)
        if cached:
            credentials = cached.load()
        else:
            if seed:
                credentials = seed.load()
                grow(space, args.grow_from, args.sims)
            else:
                credentials = populate(space, env, args.sims)
            if kind == "postgresql":
                vacuum_analyze(space)
            if cache:
                cache.save(space, credentials)
        if kind == "postgresql" and args.prewarm:
            prewarm(space)
        log(f"  ready in {elapsed(started)}")
        yield Database(kind, space, env, credentials)


# --- servers ------------------------------------------------------------------------------------

HELLO_APP = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello():
    return {"message": "Hello World"}
"""


def start_hello(db: Database, processes: int) -> harness.Process:
    directory = db.space.directory
    (directory / "hello_app.py").write_text(HELLO_APP)
    args = ["hello_app:app", "--app-dir", str(directory), "--workers", str(processes)]
    args += ["--no-access-log", "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"]
    return start(db, "hello", args, processes, UVICORN)


def start_m2m(db: Database, processes: int) -> harness.Process:
    args = ["serve", "--no-worker", "--no-access-log", "--processes", str(processes)]
    return start(db, "m2m", args, processes, harness.M2M)


def start(
    db: Database, name: str, args: list[str], processes: int, program: str
) -> harness.Process:
    server = harness.start_server(db.space, db.env, name, args, program)
    server.wait_until_up(120, processes)
    return server


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
    headers = {**PROXY_HEADERS, **harness.api_headers(token, api_key)}
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
    query = urllib.parse.urlencode({**token_params(db), "Accept": "application/json"})
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

    def cpu_seconds() -> tuple[float, float]:
        return harness.cpu_seconds(server_pids) or 0.0, harness.cpu_seconds(backends) or 0.0

    cpu_before = cpu_seconds()
    done = subprocess.run(
        [*command, f"-d{load.duration:g}s", base_url], capture_output=True, text=True, check=True
    )
    cpu_after = cpu_seconds()
    cpu, database_cpu = cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]
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
    if db.kind != "postgresql":
        return []
    with db.space.connect() as conn:
        query = text(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [int(pid) for pid in conn.execute(query).scalars()]


def token_params(db: Database) -> dict[str, str]:
    return harness.token_params(db.credentials.client_id, db.credentials.client_secret)


def request_token(base_url: str, db: Database) -> str:
    query = urllib.parse.urlencode(token_params(db))
    request = urllib.request.Request(
        f"{base_url}/token?{query}", method="POST", headers=PROXY_HEADERS
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["access_token"])


def check_sim(base_url: str, db: Database, token: str, sims: int) -> None:
    """One lookup by hand before the load: the setup works and answers the documented shape."""
    last = harness.bench_sim(sims - 1, series=1)
    request = urllib.request.Request(
        f"{base_url}{API}/simcards?msisdn={last.msisdn}",
        headers={**PROXY_HEADERS, **harness.api_headers(token, db.credentials.api_key)},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    if body[0]["Device"]["Identifier"] != last.imsi:
        raise RuntimeError(f"unexpected answer: {body}")


@dataclass
class Row:
    database: str
    processes: int
    hello: WrkResult
    simcards: WrkResult
    token: WrkResult
    memory: list[dict[str, int]]


def run(db: Database, processes: int, sims: int, load: Load) -> Row:
    work_dir = db.space.directory
    hello_server = start_hello(db, processes)
    try:
        hello = wrk(hello_server.base_url, hello_lua(), work_dir, load, hello_server.server_pids())
    finally:
        hello_server.stop()
    log(f"  hello-world      {processes} process(es): {hello.line()}")
    server = start_m2m(db, processes)
    try:
        token = request_token(server.base_url, db)
        check_sim(server.base_url, db, token, sims)
        script = simcards_lua(sims, token, db.credentials.api_key)
        pids = server.server_pids()
        backends = partial(database_backends, db)
        simcards = wrk(server.base_url + API + "/simcards", script, work_dir, load, pids, backends)
        memory = [memory_kib(pid) for pid in server.server_pids()]
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
        server.stop()
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
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directories and databases"
    )
    parser.add_argument(
        "--prepare", action="store_true", help="only set up the databases of --reuse, then exit"
    )
    parser.add_argument(
        "--prewarm",
        action="store_true",
        help="PostgreSQL: read the SIM table and its MSISDN index into shared buffers first",
    )
    parser.add_argument(
        "--grow-from",
        type=int,
        metavar="N",
        help="PostgreSQL: build the --sims database by copying --reuse's database of N SIMs "
        "(N divides --sims) instead of importing",
    )
    args = parser.parse_args()
    if args.sims < 1:
        parser.error("--sims must be at least 1")
    if args.reuse:
        args.reuse = args.reuse.resolve()
    elif args.prepare:
        parser.error("--prepare needs --reuse DIR")
    kinds = args.databases.split(",")
    if not set(kinds) <= {"sqlite", "postgresql"}:
        parser.error("--databases takes sqlite, postgresql or both")
    load = Load(args.threads, args.connections, args.duration, args.warmup)
    counts = [int(p) for p in args.processes.split(",")]
    log(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    rows: list[Row] = []
    for kind in kinds:
        with database(kind, args) as db:
            if args.prepare:
                continue
            rows.extend(run(db, p, args.sims, load) for p in counts)
    print(summary(rows))
    failed = [r for r in rows for w in (r.hello, r.simcards, r.token) if any(w.errors.values())]
    if failed:
        log("some requests failed or were not 200 (see ERRORS above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
