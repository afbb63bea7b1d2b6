#!/usr/bin/env python3
"""End-to-end benchmark of one bulk lifecycle request: an N-device deactivation in the sandbox.

    .venv/bin/python scripts/bench_lifecycle.py [--devices N] [--runs K] [--keep] [--timeout S]
                                                [--database sqlite|postgresql] [--workers W]
                                                [--receiver-check] [--env NAME=VALUE ...]
                                                [--subscribe 'sim.*']

Each run starts from nothing: a fresh database (a SQLite file in a temporary directory, or a
PostgreSQL database created for the run on ``M2M_TEST_POSTGRES_URL``'s server and dropped after),
the real server as a subprocess (``m2m serve --sandbox``, network simulator with latency 0; its
embedded worker, or with ``--workers W`` W standalone ``m2m worker`` processes instead), N extra
Active SIMs imported into the sandbox account with ``m2m admin sims import``, and a callback
receiver (an aiohttp server in this script's event loop) configured as the account's callback
URL. Then it times ``POST /m2m/1.0.0/requests/deactivation`` with the N MSISDNs until the
receiver holds N distinct ``webhook-id`` headers, and prints:

- the time to the 202 answer;
- the time to the last item finished (the request's ``finished_at``, as the server records it);
- the time to the last callback received;
- devices/s end to end (N / time to the last callback);
- the server's CPU time per device over that span (where /proc exists; the API process and its
  workers, not the database server): it is the steadier number to compare code changes with on
  a noisy machine;
- the ceiling, measured in the same run right after: ``scripts/callback_ceiling.py``, a bare
  aiohttp client in a process of its own, POSTing N copies of the run's first callback body to a
  fresh receiver of the same kind, 64 in flight; and the ratio devices/s ÷ ceiling posts/s.

With --runs K it prints each run and the medians. Every callback must say ``Success`` for one of
the imported SIMs and every one of them must end ``Deactivated``; otherwise, or when a run
(start to last callback) takes longer than --timeout seconds, it exits with status 1.
``--receiver-check`` first measures how many callbacks per second the receiver alone accepts (it
must not be the bottleneck), and ``--env M2M_WORKER_BATCH_SIZE=1000`` (repeatable) passes a
setting to the server.

``--subscribe 'sim.*'`` (repeatable: the subscription's types) also creates an event
subscription to a second receiver before the request, and a run lasts until that receiver holds
its events too (one ``sim.state_changed`` per device, and the ``request.completed`` when its types
select it), and prints when the last event arrived beside the last status message (devices/s
stays the status messages' figure; the server's CPU is measured to the later of the two). The
issue's target: with a ``sim.*`` subscription the run stays within 15% of its speed without (run
both, alternately).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import aiohttp
import harness
from harness import Process, Receiver, Sim, Workspace
from sqlalchemy import select

from m2m.events import selected_types
from m2m.storage.tables import lifecycle_requests, sim_cards


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


@dataclass
class Server:
    api: Process
    workers: list[Process]

    @property
    def processes(self) -> list[Process]:
        return [self.api, *self.workers]

    def cpu_seconds(self) -> float | None:
        return harness.cpu_seconds(process.pid for process in self.processes)

    def stop(self) -> None:
        for process in [*self.workers, self.api]:
            process.stop()


# --- checking the outcome -----------------------------------------------------------------------


def request_finished_at(space: Workspace, tracking_number: str) -> float | None:
    """The request's finished_at as a POSIX timestamp."""
    with space.connect() as conn:
        finished = conn.execute(
            select(lifecycle_requests.c.finished_at).where(
                lifecycle_requests.c.tracking_number == tracking_number
            )
        ).scalar_one_or_none()
    return None if finished is None else finished.replace(tzinfo=UTC).timestamp()


def callback_problems(receiver: Receiver, tracking_number: str, sims: list[Sim]) -> list[str]:
    problems = []
    expected_devices = {sim.iccid for sim in sims}
    devices: set[str] = set()
    not_success = bad_token = other_request = 0
    for token, body in receiver.messages.values():
        message = json.loads(body)
        devices.add(message["device"]["identifier"])
        not_success += message["resultStatus"] != "Success"
        bad_token += token != harness.CALLBACK_TOKEN
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


def sim_problems(space: Workspace, sims: list[Sim]) -> list[str]:
    wanted = {sim.msisdn for sim in sims}
    with space.connect() as conn:
        rows = conn.execute(select(sim_cards.c.msisdn, sim_cards.c.state)).all()
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
    last_event: float | None = None  # ... to the last event of the subscription (--subscribe)
    ceiling: float | None = None  # posts/s of a bare client to a receiver, right after the run

    @property
    def devices_per_second(self) -> float:
        return self.devices / self.last_callback

    @property
    def ratio(self) -> float | None:
        return None if self.ceiling is None else self.devices_per_second / self.ceiling


CEILING_CLIENT = Path(__file__).with_name("callback_ceiling.py")


async def ceiling(body: bytes, count: int, concurrency: int = 64) -> float:
    """Posts/s of ``scripts/callback_ceiling.py`` sending ``count`` copies of ``body`` to a fresh
    receiver in this event loop (as the server's callbacks are received)."""
    receiver = Receiver(expected=count)
    await receiver.start()
    try:
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CEILING_CLIENT),
            receiver.url,
            str(count),
            str(concurrency),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await client.communicate(body)
        if client.returncode != 0 or len(receiver.messages) != count:
            raise RuntimeError(f"the ceiling client failed ({len(receiver.messages)} received)")
        return float(out)
    finally:
        await receiver.stop()


def expected_events(types: list[str], devices: int) -> int:
    """The events a subscription to ``types`` gets from one request of ``devices`` changes."""
    selected = selected_types(types)
    wanted = {"sim.state_changed": devices, "request.completed": 1}
    return sum(n for t, n in wanted.items() if selected is None or t in selected)


async def subscribe(
    session: aiohttp.ClientSession, url: str, token: str, receiver_url: str, types: list[str]
) -> None:
    async with session.post(
        f"{url}{harness.API}/event-subscriptions",
        json={"url": receiver_url, "event_types": types},
        headers=harness.api_headers(token),
    ) as response:
        if response.status != 201:
            raise RuntimeError(f"event-subscriptions: {response.status} {await response.text()}")


async def measure(
    session: aiohttp.ClientSession,
    server: Server,
    space: Workspace,
    sims: list[Sim],
    subscription: list[str],
) -> RunResult:
    """Configure a receiver (and a subscription's), then time the deactivation of ``sims`` to
    the last callback (and event)."""
    receiver = Receiver(expected=len(sims))
    await receiver.start()
    events = Receiver(expected=expected_events(subscription, len(sims)))
    if subscription:
        await events.start()
    try:
        url = server.api.base_url
        token = await harness.get_token(session, url)
        await harness.configure_callback(session, url, token, receiver.url)
        if subscription:
            await subscribe(session, url, token, events.url, subscription)
        body = harness.devices_body(sims)

        cpu_before = server.cpu_seconds()
        started_wall, started = time.time(), time.perf_counter()
        tracking_number = await harness.request_operation(session, url, token, "deactivation", body)
        accepted = time.perf_counter() - started
        await harness.wait_for_callbacks(receiver)
        last_event = None
        if subscription:
            await harness.wait_for_callbacks(events)
            last_event = events.last_new_at - started
            if len(events.messages) != events.expected:
                raise RuntimeError(f"{len(events.messages)} events, not {events.expected}")
        last_callback = receiver.last_new_at - started
        cpu_after = server.cpu_seconds()
        first_body = next(iter(receiver.messages.values()))[1]
        bare = await ceiling(first_body, len(sims))

        finished_at = request_finished_at(space, tracking_number)
        problems = callback_problems(receiver, tracking_number, sims)
        problems += sim_problems(space, sims)
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
            last_event=last_event,
            ceiling=bare,
        )
    finally:
        await receiver.stop()
        await events.stop()


def start_server(space: Workspace, env: dict[str, str], workers: int) -> Server:
    """The API with its embedded worker, or (``workers`` > 0) without, beside that many
    standalone worker processes."""
    api = harness.start_api(space, env, worker=workers == 0)
    return Server(api, [harness.start_worker(space, env, n) for n in range(workers)])


async def run_once(args: argparse.Namespace) -> RunResult:
    """One run on a fresh database and server; TimeoutError after ``args.timeout`` seconds."""
    sims = [harness.bench_sim(n) for n in range(args.devices)]
    with harness.workspace(args.database, args.keep, "bench-lifecycle") as space:
        settings = {
            "M2M_SIMULATOR_LATENCY_SECONDS": "0",
            "M2M_MAX_DEVICES_PER_REQUEST": str(max(args.devices, 10_000)),
            **dict(args.env),
        }
        env = harness.m2m_env(space, settings)
        if args.database == "sqlite" and args.workers:
            # A standalone worker refuses a SQLite file that does not exist yet, and the API
            # starting beside it may not have made it yet.
            harness.m2m_cli(env, "db", "upgrade")
        # API and workers start together: each migrates under the migrations lock on start.
        server = start_server(space, env, args.workers)
        try:
            async with asyncio.timeout(args.timeout), aiohttp.ClientSession() as session:
                await asyncio.to_thread(server.api.wait_until_up, 60)
                await asyncio.to_thread(harness.seed_sims, env, space, sims)
                return await measure(session, server, space, sims, args.subscribe)
        except Exception:
            for process in server.processes:
                print(f"{process.log_path.name} (tail):\n{process.log_tail()}", file=sys.stderr)
            raise
        finally:
            server.stop()


# --- reporting ----------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f} s"


def describe(
    accepted: float,
    items_finished: float | None,
    last_callback: float,
    devices_per_second: float,
    cpu_per_device: float | None,
    bare: float | None,
    ratio: float | None,
) -> str:
    return (
        f"202 after {seconds(accepted)}, items finished after {seconds(items_finished)}, "
        f"last callback after {seconds(last_callback)}, "
        f"{devices_per_second:,.0f} devices/s end to end"
        + ("" if cpu_per_device is None else f"; server CPU {cpu_per_device * 1e6:,.0f} µs/device")
        + (
            ""
            if bare is None or ratio is None
            else f"; ceiling (bare client) {bare:,.0f} posts/s, ratio {ratio:.2f}"
        )
    )


def describe_run(result: RunResult) -> str:
    cpu = None if result.server_cpu is None else result.server_cpu / result.devices
    return (
        describe(
            result.accepted,
            result.items_finished,
            result.last_callback,
            result.devices_per_second,
            cpu,
            result.ceiling,
            result.ratio,
        )
        + (f" ({result.duplicates} duplicate callbacks)" if result.duplicates else "")
        + ("" if result.last_event is None else f"; last event after {seconds(result.last_event)}")
    )


def median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def describe_medians(results: list[RunResult]) -> str:
    last_event = median([r.last_event for r in results])
    return (
        describe_all(results)
        if last_event is None
        else describe_all(results) + f"; last event after {seconds(last_event)}"
    )


def describe_all(results: list[RunResult]) -> str:
    return describe(
        statistics.median(r.accepted for r in results),
        median([r.items_finished for r in results]),
        statistics.median(r.last_callback for r in results),
        statistics.median(r.devices_per_second for r in results),
        median([None if r.server_cpu is None else r.server_cpu / r.devices for r in results]),
        median([r.ceiling for r in results]),
        median([r.ratio for r in results]),
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
    parser.add_argument("--keep", action="store_true", help="keep each run's database")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="standalone worker processes (default 0: the API's embedded worker)",
    )
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
    parser.add_argument(
        "--subscribe",
        action="append",
        default=[],
        metavar="TYPE",
        help="also subscribe a second receiver to these event types (sim.*) and wait for its "
        "events (repeatable)",
    )
    args = parser.parse_args()
    if args.devices < 1 or args.runs < 1:
        parser.error("--devices and --runs must be at least 1")
    settings = "".join(f", {name}={value}" for name, value in args.env)
    if args.subscribe:
        settings += f", an event subscription to {' '.join(args.subscribe)}"
    workers = f"{args.workers} worker process(es)" if args.workers else "embedded worker"
    print(
        f"deactivating {args.devices:,} devices on {args.database}, {workers}, "
        f"{args.runs} run(s){settings}",
        flush=True,
    )
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
