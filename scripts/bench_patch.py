#!/usr/bin/env python3
"""PATCH /m2m/1.0.0/simcards/{iccid} with an Idempotency-Key: requests/s and what a replay costs.

    .venv/bin/python scripts/bench_patch.py [--requests N] [--postgres-url URL] [--profile]

The ASGI app is called in-process, one request after another (as ``bench_asgi.py`` does: no
sockets and no client competing for the CPU), on the sandbox's 100 SIMs in a fresh SQLite file
(durable commits: WAL, ``synchronous=FULL``) or a temporary database on ``--postgres-url``.
Measured in the same run, wall-clock requests/s and CPU µs per request of:

1. a bare FastAPI hello-world: the ceiling of this machine and stack;
2. ``PATCH`` with a new Idempotency-Key each time, each changing the SIM (a real update: the
   row, its labels, the audit entry, the key claimed then its answer recorded);
3. the same without an Idempotency-Key;
4. a replay: the same key and body again, answered from the recorded answer.

It also counts the statements each kind of request runs through SQLAlchemy connections (its
cursor events). The credentials' check and a key's lookup before the work are prepared reads
(``m2m.storage.prepared``) run on the driver's connection, which those events do not see: a
replay shows 0 there, its whole cost being those two reads.
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

import anyio.to_thread
import harness
from fastapi import FastAPI
from sqlalchemy import Engine, event

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
TARGET_PER_SECOND = 1000


async def call(
    app: Any,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
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
        return {"type": "http.request", "body": body, "more_body": False}

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


class StatementCounter:
    """How many SQL statements the engine runs (all of its connections)."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._one)

    def _one(self, *_args: Any) -> None:
        self.count += 1


Request = Callable[[int], Awaitable[tuple[int, bytes]]]


async def measure(name: str, request: Request, n: int, counter: StatementCounter) -> float:
    for i in range(-200, 0):  # warm the pools, caches and prepared statements
        status, body = await request(i)
        if status != 200:
            raise RuntimeError(f"{name}: {status} {body[:300]!r}")
    statements = counter.count
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        status, body = await request(i)
        if status != 200:
            raise RuntimeError(f"{name}: {status} {body[:300]!r}")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    per_second = n / wall
    print(
        f"{name:<34} {per_second:>8,.0f} req/s  {cpu / n * 1e6:>6,.0f} µs CPU  "
        f"{(counter.count - statements) / n:>5.1f} statements through SQLAlchemy",
        flush=True,
    )
    return per_second


async def profile(request: Request, n: int) -> None:
    """``request`` n times under cProfile: where a keyed PATCH's CPU goes (``--profile``). The
    thread pool's work runs inline, where the profiler sees it (it profiles one thread)."""

    async def inline(func: Callable[..., Any], *args: Any, **_: Any) -> Any:
        return func(*args)

    threaded = anyio.to_thread.run_sync
    anyio.to_thread.run_sync = inline  # type: ignore[assignment]
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        for i in range(n):
            await request(10_000_000 + i)
    finally:
        profiler.disable()
        anyio.to_thread.run_sync = threaded
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


async def run(database_url: str, n: int, profiled: bool = False) -> bool:
    engine = make_engine(database_url)
    upgrade(engine)
    with write_transaction(engine) as conn:
        sandbox.seed(conn, SystemClock().now())
    settings = Settings(
        sandbox=True,
        embedded_worker=False,
        database_url=database_url,
        rate_limit_per_second=10_000_000,
        rate_limit_burst=10_000_000,
    )
    app = create_app(settings, engine=engine)
    counter = StatementCounter(engine)
    _status, body = await call(app, "POST", "/token", query=TOKEN_QUERY)
    headers = {
        "Authorization": f"Bearer {json.loads(body)['access_token']}",
        "x-api-key": sandbox.API_KEY,
        "Content-Type": "application/merge-patch+json",
    }
    iccids = [sandbox.demo_iccid(i) for i in range(1, sandbox.SIM_COUNT + 1)]

    def patch_body(i: int) -> bytes:
        # A different value every time: every request really changes its SIM.
        return json.dumps({"CostCenter": f"cc-{i}", "Labels": {"batch": str(i % 7)}}).encode()

    async def keyed(i: int) -> tuple[int, bytes]:
        return await call(
            app,
            "PATCH",
            f"/m2m/1.0.0/simcards/{iccids[i % len(iccids)]}",
            headers={**headers, "Idempotency-Key": f"bench-{i}"},
            body=patch_body(i),
        )

    async def unkeyed(i: int) -> tuple[int, bytes]:
        return await call(
            app,
            "PATCH",
            f"/m2m/1.0.0/simcards/{iccids[i % len(iccids)]}",
            headers=headers,
            body=patch_body(-i - 1000),
        )

    hello = hello_app()

    async def hello_world(_i: int) -> tuple[int, bytes]:
        return await call(hello, "GET", "/")

    if profiled:
        await profile(keyed, n)
        engine.dispose()
        return True
    try:
        ceiling = await measure("hello-world", hello_world, n, counter)
        with_key = await measure("PATCH, new Idempotency-Key", keyed, n, counter)
        await measure("PATCH, no Idempotency-Key", unkeyed, n, counter)
        await measure("PATCH replayed (same key and body)", keyed, n, counter)
    finally:
        engine.dispose()
    print(f"PATCH with a key: {with_key / ceiling:.1%} of the hello-world's rate")
    reached = with_key >= TARGET_PER_SECOND
    print(f"target ≥ {TARGET_PER_SECOND:,}/s: {'met' if reached else 'NOT met'}")
    return reached


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--postgres-url", help="run on a temporary database of this server")
    parser.add_argument(
        "--profile", action="store_true", help="profile keyed PATCHes instead of measuring"
    )
    args = parser.parse_args()
    database = "postgresql" if args.postgres_url else "sqlite"
    with harness.workspace(database, False, "bench-patch", server=args.postgres_url) as space:
        reached = asyncio.run(run(space.database_url, args.requests, args.profile))
    return 0 if reached else 1


if __name__ == "__main__":
    sys.exit(main())
