#!/usr/bin/env python3
"""What a page of the event log costs with many events stored: ``events?after=`` pages of 1,000
read from a fresh database holding N events (10,000,000 by default) of 10 accounts.

    .venv/bin/python scripts/bench_events.py [--database sqlite|postgresql] [--events N]
                                             [--pages P] [--keep]

The events are written as the worker writes them (executemany, batches of 10,000), the accounts
interleaved, 80% ``sim.state_changed``, 15% ``sim.updated``, 5% ``request.completed``, each SIM
of an account with events spread over the whole log. Then, for one account, P pages starting at
random cursors are read through ``storage.events.read_wire`` and joined into the answer's JSON
(what the route does besides HTTP), for each query shape:

- ``all types``: ``(account_id, id)``;
- ``type=sim.*``: two exact types on ``(account_id, type, id)``;
- ``type=request.completed``: a rare type (1 event in 20 of the account's);
- ``sim=<ICCID>``: one SIM's events on ``(sim_id, id)``.

Printed: the median and 99th percentile wall-clock time per page, and the events per page.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import harness
from sqlalchemy import Connection, insert

from m2m.events import selected_types
from m2m.storage import events as event_store
from m2m.storage.migrate import upgrade
from m2m.storage.tables import accounts, events, sim_cards

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
ACCOUNTS = 10
SIMS_PER_ACCOUNT = 1_000
BATCH = 10_000
PAGE = 1_000


def add_accounts_and_sims(conn: Connection) -> dict[int, list[int]]:
    """account id -> its SIM ids."""
    sims: dict[int, list[int]] = {}
    for n in range(ACCOUNTS):
        account_id = int(
            conn.execute(
                insert(accounts).values(name=f"bench {n}", created_at=NOW)
            ).inserted_primary_key[0]  # type: ignore[index]
        )
        rows = [
            {
                "account_id": account_id,
                "iccid": f"89{n:02d}{i:015d}",
                "imsi": f"2{n:02d}{i:012d}",
                "msisdn": f"3{n:02d}{i:010d}",
                "state": "Active",
                "profile": {},
                "created_at": NOW,
                "updated_at": NOW,
            }
            for i in range(SIMS_PER_ACCOUNT)
        ]
        conn.execute(insert(sim_cards), rows)
        sims[account_id] = list(
            conn.execute(
                sim_cards.select()
                .with_only_columns(sim_cards.c.id)
                .where(sim_cards.c.account_id == account_id)
            ).scalars()
        )
    return sims


def event_row(n: int, account_id: int, sim_id: int, chance: float) -> dict[str, Any]:
    occurred_at = NOW + timedelta(milliseconds=n)
    if chance < 0.05:
        return {
            "account_id": account_id,
            "type": "request.completed",
            "version": 1,
            "occurred_at": occurred_at,
            "sim_id": None,
            "sim": None,
            "data": {
                "TrackingNumber": "7f1c3e5a-9a53-4a43-8f0e-1b3c2d4e5f60",
                "operation": "deactivation",
                "devices": 100,
                "results": {"Success": 100},
            },
        }
    sim = {"ICCID": f"8932{sim_id:016d}", "MSISDN": f"32{sim_id:09d}", "labels": {"site": "gent"}}
    if chance < 0.20:
        data: dict[str, Any] = {
            "fields": ["CostCenter"],
            "changes": {"CostCenter": {"before": "a", "after": "b"}},
        }
        kind = "sim.updated"
    else:
        data = {
            "from": "Active",
            "to": "Deactivated",
            "cause": "request",
            "TrackingNumber": "7f1c3e5a-9a53-4a43-8f0e-1b3c2d4e5f60",
            "operation": "deactivation",
        }
        kind = "sim.state_changed"
    return {
        "account_id": account_id,
        "type": kind,
        "version": 1,
        "occurred_at": occurred_at,
        "sim_id": sim_id,
        "sim": sim,
        "data": data,
    }


def fill(space: harness.Workspace, total: int) -> tuple[int, int, int]:
    """Write the events; returns (the measured account, one of its SIMs, the highest id)."""
    engine = space.engine()
    try:
        upgrade(engine)
        rng = random.Random(14)
        with engine.begin() as conn:
            sims = add_accounts_and_sims(conn)
        account_ids = sorted(sims)
        started = time.perf_counter()
        for start in range(0, total, BATCH):
            rows = []
            for n in range(start, min(start + BATCH, total)):
                account_id = account_ids[n % ACCOUNTS]
                rows.append(event_row(n, account_id, rng.choice(sims[account_id]), rng.random()))
            with engine.begin() as conn:
                conn.execute(insert(events), rows)
            if (start // BATCH) % 100 == 99:
                done = start + BATCH
                rate = done / (time.perf_counter() - started)
                print(f"  … {done:,} events ({rate:,.0f}/s)", file=sys.stderr)
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM ANALYZE events"
                )
        else:
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        account = account_ids[0]
        return account, sims[account][0], total
    finally:
        engine.dispose()


def timed_pages(
    space: harness.Workspace, pages: int, highest: int, read: Callable[[Connection, int], list[Any]]
) -> tuple[float, float, float]:
    """Median and p99 milliseconds per page, and the mean events per page."""
    rng = random.Random(1)
    engine = space.engine()
    times: list[float] = []
    sizes: list[int] = []
    try:
        with engine.connect() as conn:
            read(conn, 0)  # warm the connection and the statement cache
            for _ in range(pages):
                after = rng.randrange(0, max(1, highest - 50 * PAGE))
                started = time.perf_counter()
                found = read(conn, after)
                "[" + ",".join(wire for _, wire in found) + "]"
                times.append((time.perf_counter() - started) * 1000)
                sizes.append(len(found))
                conn.rollback()
    finally:
        engine.dispose()
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return statistics.median(times), p99, statistics.mean(sizes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    with harness.workspace(args.database, args.keep, "m2m-bench-events-") as space:
        print(f"writing {args.events:,} events on {args.database} …", file=sys.stderr)
        started = time.perf_counter()
        account, sim_id, highest = fill(space, args.events)
        print(f"written in {time.perf_counter() - started:,.0f} s", file=sys.stderr)
        shapes: dict[str, Callable[[Connection, int], list[Any]]] = {
            "all types": lambda conn, after: event_store.read_wire(
                conn, account, after=after, limit=PAGE
            ),
            "type=sim.*": lambda conn, after: event_store.read_wire(
                conn, account, after=after, limit=PAGE, types=selected_types(["sim.*"])
            ),
            "type=request.completed": lambda conn, after: event_store.read_wire(
                conn, account, after=after, limit=PAGE, types={"request.completed"}
            ),
            "sim=<ICCID>": lambda conn, after: event_store.read_wire(
                conn, account, after=after, limit=PAGE, sim_id=sim_id
            ),
        }
        print(f"{args.events:,} events, {ACCOUNTS} accounts, pages of {PAGE:,}, {args.database}")
        for name, read in shapes.items():
            median, p99, size = timed_pages(space, args.pages, highest, read)
            print(f"  {name:<24} median {median:6.1f} ms   p99 {p99:6.1f} ms   ({size:,.0f}/page)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
