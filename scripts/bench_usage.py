#!/usr/bin/env python3
"""Usage ingest: how many records a second are counted into the hourly, daily and monthly
aggregates, thresholds judged, beside the ceiling of the same database in the same run.

    .venv/bin/python scripts/bench_usage.py [--database sqlite|postgresql] [--sims N]
                                            [--records N] [--batch N] [--interim-minutes M]
                                            [--runs N] [--keep]

A fresh database with N Active SIMs of one account (half of them with data thresholds, so the
crossings are judged for them), then R records spread over the SIMs and over the 24 hours of
one day at random moments (nearly every record its own SIM and hour: the worst case), or with
``--interim-minutes M`` one record per SIM every M minutes in time order (a network's interim
accounting, delivered as it happens), counted with
``storage.usage.ingest`` in batches of B (each its own transaction, as the importer does).

The ceiling: the same records written as rows, as fast as the driver writes them (executemany on
SQLite, one ``unnest`` insert on PostgreSQL; the same batches) into a table of the same shape
without keys: what the database takes at best, before any aggregation. Printed: records/s for
both and the ratio; the threshold events raised.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

import harness
from sqlalchemy import Connection, insert

from m2m.storage import usage_ingest
from m2m.storage.migrate import upgrade
from m2m.storage.tables import accounts, sim_cards
from m2m.usage import COUNTERS, Totals
from m2m.usage_records import UsageRecord

DAY = datetime(2026, 11, 30, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def add_sims(conn: Connection, count: int) -> list[str]:
    account_id = conn.execute(
        insert(accounts).values(name="bench", created_at=NOW)
    ).inserted_primary_key[0]  # type: ignore[index]
    iccids = [f"8932{n:015d}" for n in range(count)]
    for start in range(0, count, 10_000):
        conn.execute(
            insert(sim_cards),
            [
                {
                    "account_id": account_id,
                    "iccid": iccids[n],
                    "imsi": f"20601{n:010d}",
                    "msisdn": f"32{n:010d}",
                    "state": "Active",
                    "profile": (
                        {"DataService": {"DailyTreshold": 5, "MonthlyTreshold": 100}}
                        if n % 2 == 0
                        else {}
                    ),
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for n in range(start, min(start + 10_000, count))
            ],
        )
    return iccids


def records(
    iccids: list[str], total: int, seed: int = 15, interim_minutes: int = 0
) -> list[UsageRecord]:
    """``total`` records: at random moments of the day (every record its own SIM and hour,
    nearly: the worst case for the aggregates), or with ``interim_minutes`` as a network's
    interim accounting sends them, a record per SIM every so many minutes, in time order."""
    rng = random.Random(seed)
    found = []
    for n in range(total):
        if interim_minutes:
            interval = n // len(iccids)
            started = DAY + timedelta(minutes=interval * interim_minutes, seconds=n % 60)
        else:
            started = DAY + timedelta(seconds=rng.randrange(86_400))
        found.append(
            UsageRecord(
                iccid=iccids[n % len(iccids)],
                imsi=None,
                started_at=started,
                ended_at=None,
                totals=Totals(
                    data_up_bytes=rng.randrange(200_000),
                    data_down_bytes=rng.randrange(800_000),
                    sms_out=rng.randrange(2),
                ),
            )
        )
    return found


def ingest(space: harness.Workspace, batch: list[list[UsageRecord]]) -> tuple[float, int]:
    engine = space.engine()
    events = 0
    started = time.perf_counter()
    for number, chunk in enumerate(batch):
        with engine.begin() as conn:
            result = usage_ingest.ingest(conn, f"bench:{number}", chunk, NOW)
            events += len(result.crossings)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, events


def ceiling(space: harness.Workspace, batch: list[list[UsageRecord]]) -> float:
    """The same rows written as fast as the driver writes them into a plain table: one
    executemany per batch on SQLite, one ``unnest`` insert on PostgreSQL."""
    engine = space.engine()
    postgresql = engine.dialect.name == "postgresql"
    columns = ("iccid", "epoch", *COUNTERS)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE raw_usage (iccid TEXT, {', '.join(c + ' BIGINT' for c in columns[1:])})"
        )
    if postgresql:
        arrays = ", ".join(["%s::text[]", *(["%s::bigint[]"] * (len(columns) - 1))])
        sql = f"INSERT INTO raw_usage SELECT * FROM unnest({arrays})"
    else:
        sql = f"INSERT INTO raw_usage VALUES ({', '.join('?' for _ in columns)})"
    started = time.perf_counter()
    for chunk in batch:
        rows = [
            (r.iccid, int(r.started_at.timestamp()), *(getattr(r.totals, c) for c in COUNTERS))
            for r in chunk
        ]
        with engine.begin() as conn:
            if postgresql:
                conn.exec_driver_sql(sql, tuple(list(c) for c in zip(*rows, strict=True)))
            else:
                conn.exec_driver_sql(sql, rows)
    elapsed = time.perf_counter() - started
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE raw_usage")
    engine.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--sims", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument(
        "--interim-minutes",
        type=int,
        default=0,
        help="records in time order, one per SIM every N minutes (default: random moments)",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    ours, bare, raised = [], [], 0
    for run in range(1, args.runs + 1):
        with harness.workspace(args.database, args.keep, "bench-usage") as space:
            engine = space.engine()
            upgrade(engine)
            with engine.begin() as conn:
                iccids = add_sims(conn, args.sims)
            engine.dispose()
            found = records(iccids, args.records, interim_minutes=args.interim_minutes)
            batches = [found[i : i + args.batch] for i in range(0, len(found), args.batch)]
            bare_seconds = ceiling(space, batches)
            our_seconds, raised = ingest(space, batches)
        ours.append(args.records / our_seconds)
        bare.append(args.records / bare_seconds)
        print(
            f"run {run}: ingest {ours[-1]:,.0f} records/s, plain INSERT {bare[-1]:,.0f} rows/s "
            f"(ratio {ours[-1] / bare[-1]:.2f}); {raised:,} threshold events",
            flush=True,
        )
    if args.runs > 1:
        o, b = statistics.median(ours), statistics.median(bare)
        print(f"median: ingest {o:,.0f} records/s, plain INSERT {b:,.0f} rows/s ({o / b:.2f})")


if __name__ == "__main__":
    main()
