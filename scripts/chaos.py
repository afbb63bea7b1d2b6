#!/usr/bin/env python3
"""Chaos checks: crash workers and the API with SIGKILL, then prove nothing was lost or doubled.

    .venv/bin/python scripts/chaos.py workers [--database postgresql|sqlite] [--workers 4]
        [--requests 200] [--devices 100] [--groups 10] [--kill-every 3] [--timeout 900] [--json]
    .venv/bin/python scripts/chaos.py api [--database ...] [--posts 1000] [--devices 5] [--json]

**workers**: an API process (no embedded worker) and ``--workers`` standalone ``m2m worker``
processes share one database. ``--groups`` x ``--devices`` Active SIMs are imported; request i
targets group i mod G and alternates deactivation and reactivation for that group, so every SIM
sees requests/G operations that each succeed only if they run exactly once and in acceptance
order (a repeat or a reordering shows as "nothing changed" or a Failure). While the requests
run, a random worker is SIGKILLed every ``--kill-every`` seconds (±50%) and started again.
Short leases (3 s) and callback timeouts (2 s) make the take-overs happen within the run. At the
end it checks, in the database and at the receiver: every item final with Success, exactly one
state change per item in the SIM's history and in acceptance order, every SIM in its expected
state, exactly one callback message per item, each delivered at least once (the receiver counts
distinct ``webhook-id``s and duplicates).

**api**: ``--posts`` concurrent lifecycle requests against an API process that is SIGKILLed
while they are in flight. Then: every request that got a TrackingNumber is in the database with
all its items, and every request in the database is whole (as many items as it says; items
belong to a request) — no orphan rows.

Both print the counts and exit 1 if any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import harness
from sqlalchemy import func, select

from m2m.storage.tables import (
    callback_deliveries,
    lifecycle_requests,
    request_items,
    sim_cards,
    sim_history,
)

# Short enough that a killed worker's items and messages are taken over within the run.
CHAOS_SETTINGS = {
    "M2M_ITEM_LEASE_SECONDS": "3",
    "M2M_CALLBACK_TIMEOUT_SECONDS": "2",
    "M2M_CALLBACK_RETRY_SCHEDULE": "[1, 1, 2, 5, 10]",
    "M2M_WORKER_POLL_SECONDS": "0.2",
    "M2M_SIMULATOR_LATENCY_SECONDS": "0.02",
    "M2M_WORKER_BATCH_SIZE": "100",
}


@dataclass
class Report:
    scenario: str
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


# --- workers ------------------------------------------------------------------------------------


def operation_of(request: int, groups: int) -> str:
    return "deactivation" if (request // groups) % 2 == 0 else "reactivation"


def expected_state(group: int, requests: int, groups: int) -> str:
    operations = len(range(group, requests, groups))
    return "Deactivated" if operations % 2 else "Active"


async def kill_workers_until(
    done: asyncio.Event, workers: list[harness.Process], every: float, rng: random.Random
) -> int:
    """SIGKILL a random worker every ``every`` s (±50%) and start it again; how many kills."""
    kills = 0
    while not done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), every * rng.uniform(0.5, 1.5))
            break
        victim = rng.choice(workers)
        await asyncio.to_thread(victim.kill)
        victim.start()
        kills += 1
    return kills


def unfinished(space: harness.Workspace) -> int:
    """Items not final, and callback messages not (yet) recorded as delivered: a message can
    reach the receiver from a worker killed before it recorded the delivery; it is then sent
    again after its lease, and the run waits for that."""
    with space.connect() as conn:
        items = select(func.count()).where(request_items.c.status != "done")
        messages = select(func.count()).where(callback_deliveries.c.status != "delivered")
        return int(conn.execute(items).scalar_one() + conn.execute(messages).scalar_one())


def check_workers_outcome(
    space: harness.Workspace,
    report: Report,
    sims: list[harness.Sim],
    tracking_numbers: list[str],
    args: argparse.Namespace,
) -> None:
    with space.connect() as conn:
        items = conn.execute(
            select(
                request_items.c.status,
                request_items.c.result_status,
                request_items.c.from_state,
                request_items.c.to_state,
            )
        ).all()
        history = conn.execute(
            select(
                sim_cards.c.msisdn,
                sim_history.c.from_state,
                sim_history.c.to_state,
                sim_history.c.tracking_number,
            )
            .join(sim_cards, sim_cards.c.id == sim_history.c.sim_id)
            .order_by(sim_history.c.id)
        ).all()
        states = dict(conn.execute(select(sim_cards.c.msisdn, sim_cards.c.state)).all())
        messages_per_item = Counter(conn.execute(select(callback_deliveries.c.item_id)).scalars())
        delivered = conn.execute(
            select(func.count()).where(callback_deliveries.c.status == "delivered")
        ).scalar_one()
    expected_items = args.requests * args.devices
    final = sum(status == "done" for status, _, _, _ in items)
    success = sum(result == "Success" for _, result, _, _ in items)
    report.counts.update(items=len(items), final=final, success=success)
    report.check(len(items) == expected_items, f"{len(items)} items, want {expected_items}")
    report.check(final == expected_items, f"{expected_items - final} items not final")
    report.check(success == expected_items, f"{expected_items - success} items not Success")
    # A Success that changed nothing means the SIM was already in the target state: the item ran
    # after a repeat of itself or out of order.
    unchanged = sum(
        1 for _, result, before, after in items if result == "Success" and before == after
    )
    report.check(unchanged == 0, f"{unchanged} items found nothing to change (applied twice?)")

    # Exactly one state change per item, per SIM in acceptance (= submission) order.
    order = {number: position for position, number in enumerate(tracking_numbers)}
    per_sim: dict[str, list[tuple[str, str, str]]] = {}
    for msisdn, from_state, to_state, tracking in history:
        per_sim.setdefault(msisdn, []).append((from_state, to_state, tracking))
    report.counts["state_changes"] = len(history)
    report.check(
        len(history) == expected_items,
        f"{len(history)} state changes recorded, want {expected_items}",
    )
    out_of_order = 0
    for index, sim in enumerate(sims):
        changes = per_sim.get(sim.msisdn, [])
        positions = [order.get(tracking, -1) for _, _, tracking in changes]
        out_of_order += positions != sorted(positions)
        group = index // args.devices
        want = expected_state(group, args.requests, args.groups)
        report.check(
            states.get(sim.msisdn) == want,
            f"SIM {sim.msisdn} is {states.get(sim.msisdn)}, want {want}",
        )
    report.counts["sims_out_of_order"] = out_of_order
    report.check(out_of_order == 0, f"{out_of_order} SIMs changed out of acceptance order")

    doubled = sum(1 for count in messages_per_item.values() if count > 1)
    report.counts.update(callback_messages=len(messages_per_item), messages_delivered=delivered)
    report.check(
        len(messages_per_item) == expected_items,
        f"{len(messages_per_item)} items have a callback message, want {expected_items}",
    )
    report.check(doubled == 0, f"{doubled} items have more than one callback message")
    report.check(
        delivered == expected_items, f"{expected_items - delivered} callback messages not delivered"
    )


async def workers_scenario(args: argparse.Namespace, report: Report) -> None:
    rng = random.Random(args.seed)
    sims = [harness.bench_sim(n) for n in range(args.groups * args.devices)]
    groups = [sims[g * args.devices : (g + 1) * args.devices] for g in range(args.groups)]
    with harness.workspace(args.database, args.keep, "chaos") as space:
        env = harness.m2m_env(space, CHAOS_SETTINGS)
        api = harness.start_api(space, env, worker=False)
        workers: list[harness.Process] = []
        receiver = harness.Receiver(expected=args.requests * args.devices)
        await receiver.start()
        try:
            async with asyncio.timeout(args.timeout), aiohttp.ClientSession() as session:
                await asyncio.to_thread(api.wait_until_up, 60)
                await asyncio.to_thread(harness.seed_sims, env, space, sims)
                token = await harness.get_token(session, api.base_url)
                await harness.configure_callback(session, api.base_url, token, receiver.url)
                workers = [harness.start_worker(space, env, n) for n in range(args.workers)]
                done = asyncio.Event()
                chaos = asyncio.create_task(kill_workers_until(done, workers, args.kill_every, rng))
                started = time.perf_counter()
                tracking_numbers = []
                for request in range(args.requests):  # one after the other: acceptance order
                    body = harness.devices_body(groups[request % args.groups])
                    operation = operation_of(request, args.groups)
                    tracking_numbers.append(
                        await harness.request_operation(
                            session, api.base_url, token, operation, body
                        )
                    )
                while unfinished(space) or len(receiver.messages) < receiver.expected:
                    await asyncio.sleep(0.5)
                done.set()
                report.counts["workers_killed"] = await chaos
                report.counts["seconds"] = round(time.perf_counter() - started)
        except Exception:
            for process in [api, *workers]:
                print(f"--- {process.log_path.name}:\n{process.log_tail(15)}", file=sys.stderr)
            raise
        finally:
            for process in [*workers, api]:
                process.stop()
            await receiver.stop()
        report.counts.update(
            callbacks_received=len(receiver.messages), callback_duplicates=receiver.duplicates
        )
        check_workers_outcome(space, report, sims, tracking_numbers, args)
        lost = report.counts["items"] - report.counts["final"]
        lost += max(0, receiver.expected - len(receiver.messages))
        report.counts["lost"] = lost


# --- api ----------------------------------------------------------------------------------------


async def post_until_killed(
    session: aiohttp.ClientSession,
    api: harness.Process,
    token: str,
    bodies: list[bytes],
    kill_after: int,
) -> tuple[list[tuple[str, int]], int]:
    """Send every body at once; SIGKILL the API once ``kill_after`` answers came back.
    The TrackingNumbers received (with the request's device count), and how many failed."""
    answered: list[tuple[str, int]] = []
    failed = 0
    killed = asyncio.Event()

    async def post(body: bytes) -> None:
        nonlocal failed
        try:
            number = await harness.request_operation(
                session, api.base_url, token, "deactivation", body
            )
        except (TimeoutError, aiohttp.ClientError, RuntimeError):
            failed += 1
            return
        answered.append((number, len(json.loads(body))))
        if len(answered) >= kill_after and not killed.is_set():
            killed.set()
            api.kill()

    await asyncio.gather(*(post(body) for body in bodies))
    if not killed.is_set():
        api.kill()
    return answered, failed


def check_api_outcome(
    space: harness.Workspace, report: Report, answered: list[tuple[str, int]]
) -> None:
    with space.connect() as conn:
        requests = {
            row.tracking_number: (row.id, row.item_count)
            for row in conn.execute(
                select(
                    lifecycle_requests.c.tracking_number,
                    lifecycle_requests.c.id,
                    lifecycle_requests.c.item_count,
                )
            )
        }
        items_per_request = Counter(conn.execute(select(request_items.c.request_id)).scalars())
    request_ids = {request_id for request_id, _ in requests.values()}
    missing = [number for number, _ in answered if number not in requests]
    short = [
        number
        for number, devices in answered
        if number in requests and items_per_request[requests[number][0]] != devices
    ]
    partial = [
        number
        for number, (request_id, count) in requests.items()
        if items_per_request[request_id] != count
    ]
    orphans = sum(n for request_id, n in items_per_request.items() if request_id not in request_ids)
    report.counts.update(
        requests_in_database=len(requests),
        answered_requests_missing=len(missing),
        answered_requests_incomplete=len(short),
        partial_requests=len(partial),
        orphan_items=orphans,
    )
    report.check(not missing, f"{len(missing)} answered requests are not in the database")
    report.check(not short, f"{len(short)} answered requests lack items")
    report.check(not partial, f"{len(partial)} requests in the database are partial")
    report.check(orphans == 0, f"{orphans} items belong to no request")


async def api_scenario(args: argparse.Namespace, report: Report) -> None:
    rng = random.Random(args.seed)
    sims = [harness.bench_sim(n) for n in range(args.devices * 20)]
    bodies = [harness.devices_body(rng.sample(sims, args.devices)) for _ in range(args.posts)]
    with harness.workspace(args.database, args.keep, "chaos-api") as space:
        env = harness.m2m_env(space, {})
        api = harness.start_api(space, env, worker=False)
        try:
            connector = aiohttp.TCPConnector(limit=args.posts)
            timeout = aiohttp.ClientTimeout(total=60)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                await asyncio.to_thread(api.wait_until_up, 60)
                await asyncio.to_thread(harness.seed_sims, env, space, sims)
                token = await harness.get_token(session, api.base_url)
                answered, failed = await post_until_killed(
                    session, api, token, bodies, kill_after=args.posts // 3
                )
        finally:
            api.kill()
        report.counts.update(posts=args.posts, answered_202=len(answered), failed=failed)
        report.check(0 < len(answered) < args.posts, "the kill did not land mid-flight")
        check_api_outcome(space, report, answered)


# --- main ---------------------------------------------------------------------------------------


def print_report(report: Report, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps({"scenario": report.scenario, **report.counts, "problems": report.problems})
        )
        return
    for name, value in report.counts.items():
        print(f"{name.replace('_', ' '):>30}: {value:,}")
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    print("OK" if not report.problems else "FAILED")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["workers", "api"])
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--devices",
        type=int,
        default=None,
        help="devices per request (default: 100 for workers, 5 for api)",
    )
    parser.add_argument("--groups", type=int, default=10, help="SIM groups the requests cycle")
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between kills")
    parser.add_argument("--posts", type=int, default=1000, help="concurrent POSTs (api)")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the database and logs")
    parser.add_argument("--json", action="store_true", help="one JSON line")
    args = parser.parse_args()
    if args.devices is None:
        args.devices = 100 if args.scenario == "workers" else 5
    report = Report(args.scenario)
    runner = workers_scenario if args.scenario == "workers" else api_scenario
    try:
        asyncio.run(runner(args, report))
    except TimeoutError:
        report.problems.append(f"not done after {args.timeout:g} s (--timeout)")
    print_report(report, args.json)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
