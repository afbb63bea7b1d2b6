#!/usr/bin/env python3
"""What one claim costs the worker: the item claim and the delivery claim, timed in-process on a
fresh database filled with the shapes that make fairness expensive.

    .venv/bin/python scripts/bench_claims.py [--database sqlite|postgresql] [--repeat N]

Scenarios (each on its own fresh database; every claim runs in a transaction that is rolled
back, so each repetition sees the same rows; printed: the median wall-clock time of N, and the
least CPU time this process spent on one, which a busy machine disturbs least):

- ``items: 1 request x 10,000``: one account's one request of 10,000 pending items, claim 500;
- ``items: 10 x 10,000 + 1``: one account's 10 requests of 10,000 items, another's of 1;
- ``items: 10 x 10,000 on the same SIMs + 1``: the 10 requests name the same 10,000 SIMs, so
  all but the first wait (per-SIM order) and the claim skips them;
- ``deliveries: 10,000 due, 1 account``: claim 64 from one account's 10,000 due messages;
- ``deliveries: 10,000 due + 1``: the same beside another account with 1 due message;
- ``deliveries: breaker open + 1``: 10,000 waiting behind an open breaker, 1 due elsewhere.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import harness
from sqlalchemy import Connection, Engine, insert, update

from m2m.callbacks.breaker import BreakerPolicy
from m2m.callbacks.dispatch import DeliveryPolicy, claim
from m2m.settings import DEFAULT_RETRY_SCHEDULE
from m2m.storage.engine import write_transaction
from m2m.storage.item_queue import claim_items
from m2m.storage.migrate import upgrade
from m2m.storage.tables import (
    accounts,
    callback_configs,
    callback_deliveries,
    lifecycle_requests,
    request_items,
    sim_cards,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
POLICY = DeliveryPolicy(account_limit=48, breaker=BreakerPolicy(5, DEFAULT_RETRY_SCHEDULE, 300))


def add_account(conn: Connection, name: str) -> int:
    result = conn.execute(insert(accounts).values(name=name, created_at=NOW))
    account_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    conn.execute(
        insert(callback_configs).values(
            account_id=account_id, url="https://example.com/cb", headers={}, updated_at=NOW
        )
    )
    return account_id


def add_sims(conn: Connection, account_id: int, first: int, count: int) -> list[int]:
    rows = conn.execute(
        insert(sim_cards).returning(sim_cards.c.id),
        [
            {
                "account_id": account_id,
                "iccid": f"8932{first + n:015d}",
                "imsi": f"206{first + n:012d}",
                "msisdn": f"32{first + n:011d}",
                "state": "Active",
                "profile": {},
                "created_at": NOW,
                "updated_at": NOW,
            }
            for n in range(count)
        ],
    )
    return sorted(int(sim_id) for sim_id in rows.scalars())


def add_request(conn: Connection, account_id: int, sim_ids: list[int]) -> list[int]:
    """A pending request on ``sim_ids``; its item ids."""
    result = conn.execute(
        insert(lifecycle_requests).values(
            tracking_number=str(uuid.uuid4()),
            account_id=account_id,
            operation="deactivation",
            callback_token="t",
            item_count=len(sim_ids),
            accepted_at=NOW,
        )
    )
    request_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    rows = conn.execute(
        insert(request_items).returning(request_items.c.id),
        [
            {
                "request_id": request_id,
                "identifier": str(sim_id),
                "identifier_type": "MSISDN",
                "sim_id": sim_id,
            }
            for sim_id in sim_ids
        ],
    )
    return [int(item_id) for item_id in rows.scalars()]


def add_messages(conn: Connection, account_id: int, item_ids: list[int]) -> None:
    conn.execute(
        update(request_items)
        .where(request_items.c.id.in_(item_ids))
        .values(status="done", finished_at=NOW)
    )
    conn.execute(
        insert(callback_deliveries),
        [
            {
                "id": str(uuid.uuid4()),
                "account_id": account_id,
                "item_id": item_id,
                "payload": {"n": item_id},
                "next_attempt_at": NOW - timedelta(seconds=n % 600),
                "created_at": NOW,
            }
            for n, item_id in enumerate(item_ids)
        ],
    )


def items_scenario(conn: Connection, requests: int, same_sims: bool) -> None:
    big = add_account(conn, "big")
    sims = add_sims(conn, big, 0, 10_000 if same_sims else 10_000 * requests)
    for r in range(requests):
        add_request(conn, big, sims if same_sims else sims[r * 10_000 : (r + 1) * 10_000])
    small = add_account(conn, "small")
    add_request(conn, small, add_sims(conn, small, len(sims), 1))


def deliveries_scenario(conn: Connection, neighbour: bool, breaker_open: bool) -> None:
    big = add_account(conn, "big")
    sims = add_sims(conn, big, 0, 10_000)
    add_messages(conn, big, add_request(conn, big, sims))
    if breaker_open:
        conn.execute(
            update(callback_configs)
            .where(callback_configs.c.account_id == big)
            .values(
                breaker_failures=5, breaker_trips=1, breaker_open_until=NOW + timedelta(seconds=60)
            )
        )
    if neighbour:
        small = add_account(conn, "small")
        add_messages(conn, small, add_request(conn, small, add_sims(conn, small, 10_000, 1)))


SCENARIOS: list[tuple[str, Callable[[Connection], None], Callable[[Connection], int]]] = [
    (
        "items: 1 request x 10,000",
        lambda conn: items_scenario(conn, 1, False),
        lambda conn: len(claim_items(conn, "c", NOW, NOW + timedelta(seconds=60), 500)),
    ),
    (
        "items: 10 x 10,000 + 1",
        lambda conn: items_scenario(conn, 10, False),
        lambda conn: len(claim_items(conn, "c", NOW, NOW + timedelta(seconds=60), 500)),
    ),
    (
        "items: 10 x 10,000 on the same SIMs + 1",
        lambda conn: items_scenario(conn, 10, True),
        lambda conn: len(claim_items(conn, "c", NOW, NOW + timedelta(seconds=60), 500)),
    ),
    (
        "deliveries: 10,000 due, 1 account",
        lambda conn: deliveries_scenario(conn, False, False),
        lambda conn: len(
            claim(conn, "c", NOW, NOW + timedelta(seconds=30), 64, {}, POLICY).deliveries
        ),
    ),
    (
        "deliveries: 10,000 due + 1",
        lambda conn: deliveries_scenario(conn, True, False),
        lambda conn: len(
            claim(conn, "c", NOW, NOW + timedelta(seconds=30), 64, {}, POLICY).deliveries
        ),
    ),
    (
        "deliveries: breaker open + 1",
        lambda conn: deliveries_scenario(conn, True, True),
        lambda conn: len(
            claim(conn, "c", NOW, NOW + timedelta(seconds=30), 64, {}, POLICY).deliveries
        ),
    ),
]


@contextmanager
def rolled_back(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin() as transaction:
        yield conn
        transaction.rollback()


def timed(
    engine: Engine, run: Callable[[Connection], int], repeat: int
) -> tuple[float, float, int]:
    """The median wall-clock milliseconds of ``repeat`` claims, the least CPU time one took (this
    process: all of SQLite's work, none of PostgreSQL's; the least is what the claim itself costs,
    the rest is other work on a busy machine), and how many rows one claimed."""
    walls: list[float] = []
    cpus: list[float] = []
    claimed = 0
    for _ in range(repeat):
        with rolled_back(engine) as conn:
            wall, cpu = time.perf_counter(), time.process_time()
            claimed = run(conn)
            cpus.append((time.process_time() - cpu) * 1000)
            walls.append((time.perf_counter() - wall) * 1000)
    return statistics.median(walls), min(cpus), claimed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--repeat", type=int, default=21, help="claims timed per scenario")
    args = parser.parse_args()
    print(f"claims on {args.database}, median of {args.repeat}:")
    for name, fill, run in SCENARIOS:
        with harness.workspace(args.database, False, "bench-claims") as space:
            engine = space.engine()
            try:
                upgrade(engine)
                with write_transaction(engine) as conn:
                    fill(conn)
                if args.database == "postgresql":
                    with engine.connect() as conn:
                        conn.exec_driver_sql("ANALYZE")
                        conn.commit()
                wall, cpu, claimed = timed(engine, run, args.repeat)
            finally:
                engine.dispose()
        print(
            f"  {name:<42} {wall:7.2f} ms, CPU at best {cpu:6.2f} ms ({claimed} claimed)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
