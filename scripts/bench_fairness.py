#!/usr/bin/env python3
"""Another tenant's callback latency beside a hanging neighbour (issue 11), end to end.

    .venv/bin/python scripts/bench_fairness.py [--backlog N] [--samples K] [--runs R]
                                               [--database sqlite|postgresql] [--keep]

Each run starts from nothing: a fresh database, the real server (``m2m serve --sandbox``, its
embedded worker, simulator latency 0, the default 15 s callback timeout), and two accounts: the
sandbox account (A) and a second one (B) made with the admin CLI, each with SIMs imported by
``m2m admin sims import``. B's callback URL is a receiver in this script; A's is a server that
accepts connections, reads each request and never answers.

1. **Ceiling**: A is idle. B deactivates one SIM, K times one after the other; each time, the
   latency from B's item finishing (the request's ``finished_at``, as the server records it) to
   B's callback arriving, and from B's POST to its callback.
2. **Hanging neighbour**: A deactivates N SIMs; once A's items are finished and its receiver
   holds connections (A's N messages are due, those in flight wait for the 15 s timeout), B does
   the same K times again.

It prints the medians of each phase and their ratio, per run, then the median of the runs. Before
fair delivery the neighbour phase did not finish: B's message queued behind every one of A's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC

import aiohttp
import harness
from aiohttp import web
from sqlalchemy import select

from m2m.storage.tables import lifecycle_requests


@dataclass
class TimedReceiver(harness.Receiver):
    """The harness receiver, also noting when (wall clock) each webhook-id first arrived."""

    arrived: dict[str, float] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        self.arrived.setdefault(request.headers.get("webhook-id", ""), time.time())
        return await super().handle(request)


@dataclass
class HangingReceiver:
    """Accepts connections and reads, never answers (the sender gives up at its timeout)."""

    url: str = ""
    connections: int = 0
    _server: asyncio.Server | None = None
    _held: set[asyncio.StreamWriter] = field(default_factory=set)

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._held.add(writer)
        try:
            while await reader.read(65536):
                pass
        finally:
            self._held.discard(writer)
            writer.close()

    async def start(self) -> None:
        port = harness.free_port()
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", port, backlog=1024)
        self.url = f"http://127.0.0.1:{port}/callback"

    async def stop(self) -> None:
        """Close the server and the connections it holds (the sender's attempts then fail at
        once, and the server under test stops without waiting for their timeouts)."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._held):
                writer.close()
            await self._server.wait_closed()


@dataclass(frozen=True)
class Tenant:
    api_key: str
    token: str


@dataclass(frozen=True)
class Sample:
    after_item: float  # item finished -> callback arrived, seconds
    after_post: float  # POST -> callback arrived


@dataclass
class RunResult:
    ceiling: list[Sample]
    neighbour: list[Sample]

    @staticmethod
    def median(samples: list[Sample], what: str) -> float:
        return statistics.median(getattr(sample, what) for sample in samples)


def finished_at(space: harness.Workspace, tracking_number: str) -> float | None:
    with space.connect() as conn:
        finished = conn.execute(
            select(lifecycle_requests.c.finished_at).where(
                lifecycle_requests.c.tracking_number == tracking_number
            )
        ).scalar_one_or_none()
    return None if finished is None else finished.replace(tzinfo=UTC).timestamp()


async def one_device(
    session: aiohttp.ClientSession,
    url: str,
    tenant: Tenant,
    sim: harness.Sim,
    receiver: TimedReceiver,
    space: harness.Workspace,
) -> Sample:
    """B deactivates ``sim``; the latencies of its callback."""
    before = set(receiver.arrived)
    posted = time.time()
    tracking_number = await harness.request_operation(
        session, url, tenant.token, "deactivation", harness.devices_body([sim]), tenant.api_key
    )
    while not set(receiver.arrived) - before:
        await asyncio.sleep(0.005)
    [webhook_id] = set(receiver.arrived) - before
    arrived = receiver.arrived[webhook_id]
    finished = await asyncio.to_thread(finished_at, space, tracking_number)
    if finished is None:
        raise RuntimeError(f"{tracking_number} has a callback but no finished_at")
    return Sample(after_item=arrived - finished, after_post=arrived - posted)


async def wait_until(condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not after {seconds:g} s: {what}")
        await asyncio.sleep(0.05)


async def run_once(args: argparse.Namespace) -> RunResult:
    sims = [harness.bench_sim(n) for n in range(args.backlog + 2 * args.samples)]
    a_sims, b_sims = sims[: args.backlog], sims[args.backlog :]
    with harness.workspace(args.database, args.keep, "bench-fairness") as space:
        env = harness.m2m_env(
            space,
            {
                "M2M_SIMULATOR_LATENCY_SECONDS": "0",
                "M2M_MAX_DEVICES_PER_REQUEST": str(max(args.backlog, 10_000)),
            },
        )
        api = harness.start_api(space, env, worker=True)
        b_receiver = TimedReceiver(expected=len(b_sims))
        hanging = HangingReceiver()
        await b_receiver.start()
        await hanging.start()
        try:
            async with aiohttp.ClientSession() as session:
                await asyncio.to_thread(api.wait_until_up, 60)
                await asyncio.to_thread(harness.seed_sims, env, space, a_sims)
                b = await asyncio.to_thread(
                    harness.m2m_json, env, "admin", "accounts", "create", "B"
                )
                app = await asyncio.to_thread(
                    harness.m2m_json,
                    env,
                    *("admin", "apps", "create", "--account", str(b["account_id"])),
                    *("--name", "bench"),
                )
                source = space.directory / "b-sims.csv"
                harness.write_csv(source, (sim.row() for sim in b_sims))
                await asyncio.to_thread(
                    harness.import_sims, env, source, b["account_id"], len(b_sims)
                )
                url = api.base_url
                a = Tenant(harness.API_KEY, await harness.get_token(session, url))
                b_tenant = Tenant(
                    b["api_key"],
                    await harness.get_token(session, url, app["client_id"], app["client_secret"]),
                )
                await harness.configure_callback(
                    session, url, b_tenant.token, b_receiver.url, b_tenant.api_key
                )

                ceiling = [
                    await one_device(session, url, b_tenant, sim, b_receiver, space)
                    for sim in b_sims[: args.samples]
                ]

                await harness.configure_callback(session, url, a.token, hanging.url)
                backlog = await harness.request_operation(
                    session, url, a.token, "deactivation", harness.devices_body(a_sims)
                )
                await wait_until(lambda: finished_at(space, backlog) is not None, "A's items")
                await wait_until(lambda: hanging.connections > 0, "A's receiver holds")
                neighbour = [
                    await one_device(session, url, b_tenant, sim, b_receiver, space)
                    for sim in b_sims[args.samples :]
                ]
                return RunResult(ceiling, neighbour)
        except Exception:
            print(f"{api.log_path.name} (tail):\n{api.log_tail()}", file=sys.stderr)
            raise
        finally:
            await hanging.stop()
            await asyncio.to_thread(api.stop)
            await b_receiver.stop()


def describe(ceiling: float, neighbour: float, ceiling_post: float, neighbour_post: float) -> str:
    return (
        f"B's callback after its item finished: {ceiling * 1000:,.0f} ms alone, "
        f"{neighbour * 1000:,.0f} ms beside the hanging neighbour "
        f"(x{neighbour / ceiling:.1f}); after its POST: {ceiling_post * 1000:,.0f} ms, "
        f"{neighbour_post * 1000:,.0f} ms"
    )


async def main_async(args: argparse.Namespace) -> int:
    results = []
    for run in range(1, args.runs + 1):
        try:
            async with asyncio.timeout(args.timeout):
                result = await run_once(args)
        except TimeoutError:
            print(f"run {run}: FAILED: not done after {args.timeout:g} s (--timeout)")
            return 1
        except (RuntimeError, aiohttp.ClientError) as error:
            print(f"run {run}: FAILED: {error}")
            return 1
        results.append(result)
        figures = [
            RunResult.median(result.ceiling, "after_item"),
            RunResult.median(result.neighbour, "after_item"),
            RunResult.median(result.ceiling, "after_post"),
            RunResult.median(result.neighbour, "after_post"),
        ]
        print(f"run {run}: {describe(*figures)}", flush=True)
        if args.json:
            print(json.dumps({"run": run, "figures_s": figures}))
    if len(results) > 1:
        medians = [
            statistics.median(RunResult.median(r.ceiling, "after_item") for r in results),
            statistics.median(RunResult.median(r.neighbour, "after_item") for r in results),
            statistics.median(RunResult.median(r.ceiling, "after_post") for r in results),
            statistics.median(RunResult.median(r.neighbour, "after_post") for r in results),
        ]
        print(f"median of {len(results)}: {describe(*medians)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=5000, help="A's messages due (N)")
    parser.add_argument("--samples", type=int, default=10, help="B's requests per phase (K)")
    parser.add_argument("--runs", type=int, default=1, help="runs, each on a fresh server")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--keep", action="store_true", help="keep each run's database")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per run at most")
    parser.add_argument("--json", action="store_true", help="also a JSON line per run")
    args = parser.parse_args()
    if args.backlog < 1 or args.samples < 1 or args.runs < 1:
        parser.error("--backlog, --samples and --runs must be at least 1")
    print(
        f"{args.database}: A has {args.backlog:,} messages for a receiver that never answers; "
        f"B sends {args.samples} one-device requests alone, then beside A; {args.runs} run(s)",
        flush=True,
    )
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
