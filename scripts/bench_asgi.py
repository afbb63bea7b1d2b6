#!/usr/bin/env python3
"""CPU time per request of the app itself: the ASGI app called in-process, one request at a time.

    .venv/bin/python scripts/bench_asgi.py [--requests N] [--postgres-url URL] [--cprofile]
    .venv/bin/python scripts/bench_asgi.py --metrics-overhead [--rounds 3]

No server, no sockets, no client: only the application's own work for ``GET /simcards`` and
``POST /token`` (the common call, the valid token handed back), beside a bare FastAPI
hello-world, measured with ``time.process_time`` on the sandbox's 100 SIMs (SQLite in a
temporary directory, or a temporary database on ``--postgres-url``). Much steadier than wrk on a
busy machine, so it is the number to compare code changes with; ``--cprofile`` shows where the
time of ``GET /simcards`` goes (threads other than the event loop's are not profiled).

``--metrics-overhead`` measures what the metrics cost ``GET /simcards``: two apps on the same
database, ``M2M_METRICS_ENABLED`` true and false, measured alternately in short blocks of
``--requests`` (the order swapped each round), so that a busy machine's drift hits both alike;
it prints each side's median, the median of the rounds' ratios, and the load average. Set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory to measure the multi-process mode (what
``serve --processes N`` runs).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import harness
from fastapi import FastAPI
from sqlalchemy import Engine

from m2m import sandbox
from m2m.asgi import create_app
from m2m.clock import SystemClock
from m2m.settings import Settings
from m2m.storage.engine import make_engine, write_transaction
from m2m.storage.migrate import upgrade

TOKEN_QUERY = (
    f"grant_type=client_credentials&client_id={sandbox.CLIENT_ID}"
    f"&client_secret={sandbox.CLIENT_SECRET}"
).encode()


async def call(
    app: Any, method: str, path: str, query: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:])


def hello_app() -> FastAPI:
    hello = FastAPI()

    @hello.get("/")
    async def root() -> dict[str, str]:
        return {"message": "Hello World"}

    return hello


async def measure(
    name: str, request: Callable[[int], Awaitable[tuple[int, bytes]]], n: int
) -> None:
    for i in range(200):  # warm the pools, caches and prepared statements
        status, body = await request(i)
        if status != 200:
            raise RuntimeError(f"{name}: {status} {body[:200]!r}")
    started = time.process_time()
    for i in range(n):
        await request(i)
    print(f"{name}: {(time.process_time() - started) / n * 1e6:,.0f} µs CPU per request")


async def cpu_per_request(request: Callable[[int], Awaitable[tuple[int, bytes]]], n: int) -> float:
    """Seconds of CPU per request, after a short warm-up."""
    for i in range(50):
        status, body = await request(i)
        if status != 200:
            raise RuntimeError(f"{status} {body[:200]!r}")
    started = time.process_time()
    for i in range(n):
        await request(i)
    return (time.process_time() - started) / n


async def metrics_overhead(database_url: str, n: int, rounds: int) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    with write_transaction(engine) as conn:
        sandbox.seed(conn, SystemClock().now())
    engine.dispose()

    async def lookup(enabled: bool) -> tuple[Callable[[int], Awaitable[Any]], Engine]:
        settings = Settings(
            sandbox=True,
            embedded_worker=False,
            database_url=database_url,
            metrics_enabled=enabled,
        )
        own = make_engine(database_url)  # an engine each: nothing shared but the file
        app = create_app(settings, engine=own)
        _status, body = await call(app, "POST", "/token", TOKEN_QUERY)
        headers = {
            "Authorization": f"Bearer {json.loads(body)['access_token']}",
            "x-api-key": sandbox.API_KEY,
        }

        async def simcards(i: int) -> Any:
            query = f"msisdn={sandbox.FIRST_MSISDN + i % sandbox.SIM_COUNT}".encode()
            return await call(app, "GET", "/m2m/1.0.0/simcards", query, headers)

        return simcards, own

    mode = "multi-process" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "single-process"
    print(f"GET /simcards, metrics on and off ({mode} metrics), {n} requests a round")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    figures: dict[bool, list[float]] = {True: [], False: []}
    for round_number in range(rounds):
        # A new pair of apps each round, made and measured in alternating order: the app made
        # first measured up to 9% slower than the second in an A/A run, whatever its settings.
        order = (True, False) if round_number % 2 == 0 else (False, True)
        made = [await lookup(enabled) for enabled in order]
        try:
            for enabled, (simcards, _own) in zip(order, made, strict=True):
                figures[enabled].append(await cpu_per_request(simcards, n))
        finally:
            for _simcards, own in made:
                own.dispose()
    on, off = statistics.median(figures[True]), statistics.median(figures[False])
    ratio = statistics.median(a / b for a, b in zip(figures[True], figures[False], strict=True))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"median CPU per request over {rounds} rounds: with metrics {on * 1e6:,.1f} µs, "
        f"without (the ceiling) {off * 1e6:,.1f} µs; median ratio {ratio:.3f} "
        f"({(ratio - 1) * 100:+.1f}%)"
    )


async def run(database_url: str, n: int, profile: bool) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    with write_transaction(engine) as conn:
        sandbox.seed(conn, SystemClock().now())
    app = create_app(
        Settings(sandbox=True, embedded_worker=False, database_url=database_url), engine=engine
    )
    _status, body = await call(app, "POST", "/token", TOKEN_QUERY)
    headers = {
        "Authorization": f"Bearer {json.loads(body)['access_token']}",
        "x-api-key": sandbox.API_KEY,
    }

    async def simcards(i: int) -> tuple[int, bytes]:
        query = f"msisdn={sandbox.FIRST_MSISDN + i % sandbox.SIM_COUNT}".encode()
        return await call(app, "GET", "/m2m/1.0.0/simcards", query, headers)

    async def token(_i: int) -> tuple[int, bytes]:
        return await call(app, "POST", "/token", TOKEN_QUERY)

    hello = hello_app()

    async def hello_world(_i: int) -> tuple[int, bytes]:
        return await call(hello, "GET", "/")

    try:
        await measure("hello-world", hello_world, n)
        await measure("GET /simcards", simcards, n)
        await measure("POST /token", token, n)
        if profile:
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            for i in range(n):
                await simcards(i)
            profiler.disable()
            # M2M_PROFILE_SORT=cumulative M2M_PROFILE_LINES=70: the call tree's view.
            order = os.environ.get("M2M_PROFILE_SORT", "tottime")
            lines = int(os.environ.get("M2M_PROFILE_LINES", "30"))
            pstats.Stats(profiler).sort_stats(order).print_stats(lines)
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--postgres-url", help="run on a temporary database of this server")
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--metrics-overhead", action="store_true")
    parser.add_argument("--rounds", type=int, default=30, help="with --metrics-overhead")
    args = parser.parse_args()
    database = "postgresql" if args.postgres_url else "sqlite"
    with harness.workspace(database, False, "bench-asgi", server=args.postgres_url) as space:
        if args.metrics_overhead:
            asyncio.run(metrics_overhead(space.database_url, args.requests, args.rounds))
        else:
            asyncio.run(run(space.database_url, args.requests, args.cprofile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
