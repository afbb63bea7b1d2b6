#!/usr/bin/env python3
"""How long a test suite waits between two tests: ``POST /sandbox/reset`` and the first
``POST /token`` after it, against a real ``m2m serve --sandbox`` (worker included) on loopback.

    .venv/bin/python scripts/bench_sandbox_reset.py [--runs N] [--postgres] [--postgres-url URL]

Prints the median of N runs beside the median of a request that does no database work on the same
server in the same run (``GET /sandbox/clock``: this server's hello-world, the floor of one
round trip), their ratio, and the figure against the 200 ms the issue asks for.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import harness
import httpx

TARGET_MS = 200.0


def timed(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


def run(base_url: str, runs: int) -> tuple[list[float], list[float], list[float]]:
    resets: list[float] = []
    hellos: list[float] = []
    tokens: list[float] = []  # the /token part of each reset + token
    with httpx.Client(base_url=base_url, timeout=30) as client:

        def reset_and_token() -> None:
            client.post("/sandbox/reset").raise_for_status()
            started = time.perf_counter()
            client.post("/token", params=harness.token_params()).raise_for_status()
            tokens.append((time.perf_counter() - started) * 1000)

        def hello() -> None:
            client.get("/sandbox/clock").raise_for_status()

        for _ in range(3):  # warm up: connections, prepared statements, the first seed
            reset_and_token()
            hello()
        for _ in range(runs):  # alternated, so that both see the same machine
            resets.append(timed(reset_and_token))
            hellos.append(timed(hello))
    return resets, hellos, tokens[3:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--postgres", action="store_true", help="on PostgreSQL (else SQLite)")
    parser.add_argument("--postgres-url", help="the PostgreSQL server (implies --postgres)")
    args = parser.parse_args()
    database = "postgresql" if args.postgres or args.postgres_url else "sqlite"
    with harness.workspace(database, False, "bench-reset", server=args.postgres_url) as space:
        server = harness.start_api(space, harness.m2m_env(space, {}), worker=True)
        try:
            server.wait_until_up(60)
            resets, hellos, tokens = run(server.base_url, args.runs)
        finally:
            server.stop()
    reset_ms = statistics.median(resets)
    hello_ms = statistics.median(hellos)
    print(f"database: {database}, {args.runs} runs (medians)")
    print(f"reset + first /token: {reset_ms:8.1f} ms")
    print(f"  of which /token: {statistics.median(tokens):8.1f} ms")
    print(f"hello-world (GET /sandbox/clock): {hello_ms:8.2f} ms")
    print(f"ratio reset+token / hello-world: {reset_ms / hello_ms:8.1f}")
    print(f"against the {TARGET_MS:.0f} ms ceiling: {reset_ms / TARGET_MS:8.2f} of it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
