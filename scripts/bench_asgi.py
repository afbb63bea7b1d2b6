#!/usr/bin/env python3
"""CPU time per request of the app itself: the ASGI app called in-process, one request at a time.

    .venv/bin/python scripts/bench_asgi.py [--requests N] [--postgres-url URL] [--cprofile]

No server, no sockets, no client: only the application's own work for ``GET /simcards`` and
``POST /token`` (the common call, the valid token handed back), beside a bare FastAPI
hello-world, measured with ``time.process_time`` on the sandbox's 100 SIMs (SQLite in a
temporary directory, or a temporary database on ``--postgres-url``). Much steadier than wrk on a
busy machine, so it is the number to compare code changes with; ``--cprofile`` shows where the
time of ``GET /simcards`` goes (threads other than the event loop's are not profiled).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import harness
from fastapi import FastAPI

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
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--postgres-url", help="run on a temporary database of this server")
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    database = "postgresql" if args.postgres_url else "sqlite"
    with harness.workspace(database, False, "bench-asgi", server=args.postgres_url) as space:
        asyncio.run(run(space.database_url, args.requests, args.cprofile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
