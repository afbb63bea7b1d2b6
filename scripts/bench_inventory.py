#!/usr/bin/env python3
"""The SIM list over HTTP on a large inventory: filtered pages, a walk of everything, and the
query plan of a delta sync.

    .venv/bin/python scripts/bench_inventory.py [--sims N] [--databases sqlite,postgresql]
        [--clients C] [--duration S] [--postgres-url URL] [--keep]

For each database: a fresh one (harness.workspace), migrated, one account with an API key and a
permanent token, and N SIMs (default 1,000,000) written straight with SQL in batches: states
mixed, 100 cost centers, each SIM labelled ``site=site-<0..99>`` and every tenth ``tier=gold``,
``updated_at`` spread over the last 30 days (so the last hour holds about 1/720 of them). Then
ANALYZE, as a deployment's autovacuum (PostgreSQL) or ``m2m db`` maintenance (SQLite) would.

1. The query plan of ``updated_since`` = one hour ago (EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN
   on SQLite): it must be one range scan of ix_sim_cards_account_id_updated_at_id; and the
   plans of a custom field's and the plan's filter (they read the profile document).
2. ``m2m serve --no-worker`` and a FastAPI hello-world served the same way; C concurrent clients
   (default 16, aiohttp, in a process of their own) for S seconds each: the hello-world (the
   ceiling of this machine and stack), then a page of 100 filtered by state and a label, then a
   page of 100 filtered by cost center. p50 and p99 latency, req/s, and the ratio to the
   hello-world. Every answer must be 200.
3. Walking every SIM through the cursor, pages of 1,000: with plain HTTP (httpx following the
   ``Link`` header, ``json.loads`` of each page: what the server serves), then with the SDK
   (``client.sims(page_size=1000)``, typed models): the time, and the client's peak resident
   memory after 10%, 50% and 100% of the SDK's walk (flat: pages are consumed as they come).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import resource
import statistics
import sys
import time
from datetime import timedelta
from typing import Any

import aiohttp
import bench_http
import harness
import httpx
from sqlalchemy import Connection, event, text

from m2m import accounts
from m2m.audit import ADMIN_CLI
from m2m.client import M2MClient
from m2m.clock import SystemClock
from m2m.sim_query import SimFilters
from m2m.storage import sims as sim_store
from m2m.storage.engine import make_engine, write_transaction
from m2m.storage.inventory import list_sims
from m2m.storage.migrate import upgrade

STATES = ["Active", "Active", "Active", "Ready", "Deactivated"]
SITES = 100
COST_CENTERS = 100
BATCH = 10_000
SPREAD = timedelta(days=30)


def log(message: str) -> None:
    print(message, flush=True)


# --- the inventory --------------------------------------------------------------------------


def fill(conn: Connection, account_id: int, count: int) -> None:
    now = SystemClock().now()
    step = SPREAD / count
    for start in range(0, count, BATCH):
        sim_store.insert_sims(
            conn,
            [
                {
                    "account_id": account_id,
                    "iccid": f"89441{n:014d}",
                    "imsi": f"20602{n:010d}",
                    "msisdn": f"3248{n:08d}",
                    # By blocks of SITES ids: every site has SIMs in every state (n % 5 would
                    # give each site one state, so that a third of the label pages were empty
                    # after reading every SIM with the label).
                    "state": STATES[n // SITES % len(STATES)],
                    "cost_center": f"CC-{n % COST_CENTERS}",
                    "profile": bench_http.sim_profile(n),
                    "created_at": now - SPREAD,
                    # The newest SIMs changed last: the last hour holds the last count/720.
                    "updated_at": now - SPREAD + step * n,
                }
                for n in range(start, min(start + BATCH, count))
            ],
        )
    # The labels, with SQL: the search table the filters read (the documents' copy is left
    # empty, which no list answer shows).
    conn.execute(
        text(
            "INSERT INTO sim_labels (sim_id, account_id, key, value)"
            " SELECT id, account_id, 'site', 'site-' || CAST(id % :sites AS VARCHAR(8))"
            " FROM sim_cards WHERE account_id = :account"
        ),
        {"sites": SITES, "account": account_id},
    )
    conn.execute(
        text(
            "INSERT INTO sim_labels (sim_id, account_id, key, value)"
            " SELECT id, account_id, 'tier', 'gold' FROM sim_cards"
            " WHERE account_id = :account AND id % 10 = 0"
        ),
        {"account": account_id},
    )


def populate(space: harness.Workspace, count: int) -> tuple[int, str, str]:
    """Migrate, create the account and its SIMs; (account id, API key, permanent token)."""
    engine = make_engine(space.database_url)
    try:
        upgrade(engine)
        clock = SystemClock()
        account = accounts.create_account(engine, clock, "Inventory benchmark", actor=ADMIN_CLI)
        token = accounts.create_permanent_token(engine, clock, account.id, "bench", actor=ADMIN_CLI)
        started = time.perf_counter()
        with write_transaction(engine) as conn:
            fill(conn, account.id, count)
        log(f"  {count:,} SIMs and their labels written in {time.perf_counter() - started:.0f} s")
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.execute(text("VACUUM ANALYZE"))
            else:
                conn.execute(text("ANALYZE"))
                conn.commit()
        return account.id, account.secret, token.secret
    finally:
        engine.dispose()


def explain(space: harness.Workspace, account_id: int) -> None:
    """The plans of the first page of a delta sync (``updated_since`` = an hour ago), and of
    the filters that read the profile document (a custom field, the plan)."""
    engine = make_engine(space.database_url)
    since = SystemClock().now() - timedelta(hours=1)
    cases = {
        "updated_since an hour ago": SimFilters(updated_since=since),
        "custom_field_2=Site 5": SimFilters(custom_fields=(("Custom Field 2", "Site 5"),)),
        "plan=M2M-DATA-1GB": SimFilters(plan="M2M-DATA-1GB"),
    }
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    try:
        with engine.connect() as conn:
            for name, filters in cases.items():
                event.listen(conn, "before_cursor_execute", capture)
                started = time.perf_counter()
                page, _ = list_sims(conn, account_id, filters, None, 100)
                took = (time.perf_counter() - started) * 1000
                event.remove(conn, "before_cursor_execute", capture)
                statement, parameters = captured[-1]
                postgres = engine.dialect.name == "postgresql"
                prefix = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
                raw = conn.connection.dbapi_connection
                assert raw is not None
                cursor = raw.cursor()
                cursor.execute(prefix + statement, parameters)
                plan = [" ".join(str(c) for c in row) for row in cursor.fetchall()]
                cursor.close()
                log(f"  {name}: {len(page)} SIMs on the first page in {took:.1f} ms; the plan:")
                for line in plan:
                    log(f"    {line}")
    finally:
        engine.dispose()


# --- load -----------------------------------------------------------------------------------


async def _load(
    base_url: str,
    paths: list[str],
    headers: dict[str, str],
    clients: int,
    seconds: float,
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession, seed: int) -> None:
        chosen = random.Random(seed)
        while time.perf_counter() < deadline:
            path = chosen.choice(paths)
            started = time.perf_counter()
            async with session.get(base_url + path, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm up (pools, caches): one request per client, not counted.
        for n in range(clients):
            async with session.get(base_url + paths[n % len(paths)], headers=headers) as r:
                await r.read()
        started = time.perf_counter()
        await asyncio.gather(*(client(session, n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "statuses": statuses,
    }


def _load_process(arguments: tuple[Any, ...], out: Any) -> None:
    out.put(asyncio.run(_load(*arguments)))


def load(
    base_url: str, paths: list[str], headers: dict[str, str], clients: int, seconds: float
) -> dict[str, Any]:
    """``_load`` in a process of its own: the clients' CPU is not the benchmark's process's."""
    queue: Any = multiprocessing.Queue()
    process = multiprocessing.Process(
        target=_load_process, args=((base_url, paths, headers, clients, seconds), queue)
    )
    process.start()
    result: dict[str, Any] = queue.get()
    process.join()
    return result


def line(name: str, result: dict[str, Any], ceiling: dict[str, Any] | None) -> str:
    ratio = ""
    if ceiling is not None:
        ratio = f"  ({result['rps'] / ceiling['rps']:.0%} of hello's req/s)"
    bad = {s: n for s, n in result["statuses"].items() if s != 200}
    return (
        f"  {name:32} {result['rps']:7,.0f} req/s  p50 {result['p50_ms']:6.1f} ms"
        f"  p99 {result['p99_ms']:6.1f} ms{ratio}" + (f"  NOT 200: {bad}" if bad else "")
    )


# --- the walk -------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class BehindProxy(httpx.HTTPTransport):
    """Adds what the TLS-terminating proxy of a production setup would (bench_http.py's)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.headers.update(bench_http.PROXY_HEADERS)
        return super().handle_request(request)


def walk(base_url: str, api_key: str, token: str, count: int) -> None:
    marks = {count // 10: "10%", count // 2: "50%", count: "100%"}
    seen = 0
    started = time.perf_counter()
    peaks = []
    with M2MClient(
        base_url, api_key=api_key, token=token, timeout=120, transport=BehindProxy()
    ) as client:
        before = peak_rss_mib()
        for _sim in client.sims(page_size=1000):
            seen += 1
            if seen in marks:
                peaks.append(f"{marks[seen]} {peak_rss_mib():.0f} MiB")
    seconds = time.perf_counter() - started
    log(
        f"  walk of every SIM, pages of 1,000: {seen:,} SIMs in {seconds:.1f} s"
        f" ({seen / seconds:,.0f}/s); client peak RSS {before:.0f} MiB before, " + ", ".join(peaks)
    )
    if seen != count:
        raise SystemExit(f"the walk saw {seen:,} SIMs, not {count:,}")


def walk_raw(base_url: str, api_key: str, token: str, count: int) -> None:
    """The same walk without the SDK's typed models: following the ``Link`` header and
    counting what each page holds, which is what the server can serve."""
    headers = {**bench_http.PROXY_HEADERS, **harness.api_headers(token, api_key)}
    url: str | None = f"{base_url}{harness.API}/simcards?limit=1000"
    seen = 0
    started = time.perf_counter()
    with httpx.Client(timeout=120, headers=headers) as client:
        while url is not None:
            response = client.get(url)
            response.raise_for_status()
            seen += len(json.loads(response.content))
            link = response.headers.get("link")
            # The Link is absolute, with the scheme the proxy said (https): keep its path.
            url = base_url + link[link.index("/m2m/") : link.index(">")] if link else None
    seconds = time.perf_counter() - started
    log(
        f"  walk of every SIM, pages of 1,000, plain HTTP + json.loads: {seen:,} SIMs in"
        f" {seconds:.1f} s ({seen / seconds:,.0f}/s)"
    )
    if seen != count:
        raise SystemExit(f"the walk saw {seen:,} SIMs, not {count:,}")


# --- a run ----------------------------------------------------------------------------------


def run(kind: str, args: argparse.Namespace) -> None:
    log(f"{kind}: {args.sims:,} SIMs")
    with harness.workspace(kind, args.keep, "bench-inventory", server=args.postgres_url) as space:
        account_id, api_key, token = populate(space, args.sims)
        explain(space, account_id)
        env = harness.m2m_env(space, bench_http.SERVER_SETTINGS, sandbox=False)
        db = bench_http.Database(kind, space, env, bench_http.Credentials("", "", api_key))
        headers = {**bench_http.PROXY_HEADERS, **harness.api_headers(token, api_key)}
        hello = bench_http.start_hello(db, 1)
        try:
            ceiling = load(
                hello.base_url, ["/"], bench_http.PROXY_HEADERS, args.clients, args.duration
            )
        finally:
            hello.stop()
        log(line("hello-world (the ceiling)", ceiling, None))
        server = bench_http.start_m2m(db, 1)
        try:
            simcards = f"{harness.API}/simcards"
            cases = {
                "state=Active & label site=…": [
                    f"{simcards}?state=Active&label=site%3Dsite-{n}&limit=100" for n in range(SITES)
                ],
                "cost_center=…": [
                    f"{simcards}?cost_center=CC-{n}&limit=100" for n in range(COST_CENTERS)
                ],
            }
            for name, paths in cases.items():
                result = load(server.base_url, paths, headers, args.clients, args.duration)
                log(line(name, result, ceiling))
            walk_raw(server.base_url, api_key, token, args.sims)
            walk(server.base_url, api_key, token, args.sims)
        finally:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sims", type=int, default=1_000_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--postgres-url", default=harness.POSTGRES_ADMIN_URL)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    for kind in args.databases.split(","):
        run(kind, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
