#!/usr/bin/env python3
"""The console's SIM list and overview queries on a large inventory.

    .venv/bin/python scripts/bench_console.py [--sims N] [--database-url URL]

Fills one account with N SIMs (default 1,000,000; a fresh SQLite file in a temporary directory
unless --database-url names an empty, migrated-or-not database), then times each console query
(the median of 5 runs) and prints its plan: the first page, a page deep in the inventory, a state
filter, prefix searches broad and narrow, and the overview's count per state.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import harness
from sqlalchemy import Connection, text

from m2m import accounts
from m2m.audit import ADMIN_CLI
from m2m.clock import SystemClock
from m2m.identifiers import SimState
from m2m.storage import fleet, sims
from m2m.storage.engine import make_engine, write_transaction
from m2m.storage.migrate import upgrade

STATES = [s.value for s in SimState]
BATCH = 10_000


def fill(conn: Connection, account_id: int, count: int) -> None:
    now = SystemClock().now()
    for start in range(0, count, BATCH):
        sims.insert_sims(
            conn,
            [
                {
                    "account_id": account_id,
                    "iccid": f"89440{n:014d}",
                    "imsi": f"20601{n:010d}",
                    "msisdn": f"3247{n:08d}",
                    "state": STATES[n % 4],
                    "cost_center": None,
                    "profile": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(start, min(start + BATCH, count))
            ],
        )


def timed(conn: Connection, query: Callable[[], Any]) -> float:
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        query()
        runs.append(time.perf_counter() - started)
    del conn
    return statistics.median(runs) * 1000


def bench(url: str, count: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    account = accounts.create_account(engine, SystemClock(), "Bench", actor=ADMIN_CLI)
    started = time.perf_counter()
    with write_transaction(engine) as conn:
        fill(conn, account.id, count)
    print(f"{count} SIMs inserted in {time.perf_counter() - started:.1f} s ({url})")
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    deep = count * 9 // 10
    cases: dict[str, Callable[[Connection], Any]] = {
        "first page": lambda c: fleet.list_sims(c, account.id),
        "page at 90%": lambda c: fleet.list_sims(c, account.id, after_id=deep),
        "previous page at 90%": lambda c: fleet.list_sims(c, account.id, before_id=deep),
        "state Terminated, page at 90%": lambda c: fleet.list_sims(
            c, account.id, state="Terminated", after_id=deep
        ),
        "search '3247' (all match)": lambda c: fleet.list_sims(c, account.id, digits="3247"),
        "search '3247', Terminated, at 90%": lambda c: fleet.list_sims(
            c, account.id, digits="3247", state="Terminated", after_id=deep
        ),
        "search '324700999' (1,000 match)": lambda c: fleet.list_sims(
            c, account.id, digits="324700999"
        ),
        "search '32470099' (10,000 at the end)": lambda c: fleet.list_sims(
            c, account.id, digits="32470099"
        ),
        "search '3247009' (100,000 at the end)": lambda c: fleet.list_sims(
            c, account.id, digits="3247009"
        ),
        "search one ICCID": lambda c: fleet.list_sims(c, account.id, digits=f"89440{deep:014d}"),
        "search, no match": lambda c: fleet.list_sims(c, account.id, digits="5555"),
        "overview: SIMs per state": lambda c: fleet.sims_by_state(c, account.id),
    }
    with engine.connect() as conn:
        for name, case in cases.items():
            print(f"{name:40} {timed(conn, lambda case=case: case(conn)):8.2f} ms")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sims", type=int, default=1_000_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    if args.database_url:
        bench(args.database_url, args.sims)
    else:
        with harness.workspace("sqlite", keep=False, prefix="bench-console") as space:
            bench(space.database_url, args.sims)


if __name__ == "__main__":
    main()
