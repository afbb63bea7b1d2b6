#!/usr/bin/env python3
"""Benchmark of the SIM CSV import (``m2m.simimport.import_csv``) on a fresh SQLite database.

    .venv/bin/python scripts/bench_import.py [--rows N] [--profile-every K] [--cprofile [N]]

Generates N valid, unique rows (default 1,000,000) into a temporary directory, creates an
account in a fresh, migrated SQLite database beside it, times ``import_csv`` alone (not the file
generation nor the migration) and prints rows, seconds and rows/s. ``--profile-every K`` fills the
profile shorthands (apn, data_plan, custom_field_1) on every K-th row; ``--cprofile`` runs the
import under cProfile and prints the most expensive functions.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time

import harness

from m2m import accounts
from m2m.audit import ADMIN_CLI
from m2m.clock import SystemClock
from m2m.identifiers import SimState
from m2m.simimport import ImportReport, import_csv
from m2m.storage import sims
from m2m.storage.migrate import upgrade

STATES = [state.value for state in SimState]
COLUMNS = ["iccid", "imsi", "msisdn", "state", "cost_center", "apn", "data_plan", "custom_field_1"]


def row(n: int, profile_every: int) -> list[str]:
    """The ``n``-th line (COLUMNS), with the profile shorthands on every ``profile_every``-th."""
    with_profile = profile_every > 0 and n % profile_every == 0
    return [
        harness.iccid(f"8944{n:014d}"),
        f"23415{n:010d}",
        f"+447{n:09d}",
        STATES[n % len(STATES)],
        f"CC-{n % 100}",
        "internet.m2m" if with_profile else "",
        "PLAN-1GB" if with_profile else "",
        f"asset-{n}" if with_profile else "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to import")
    parser.add_argument(
        "--profile-every", type=int, default=0, help="fill the profile shorthands every K rows"
    )
    parser.add_argument(
        "--cprofile",
        type=int,
        nargs="?",
        const=25,
        default=0,
        metavar="N",
        help="run the import under cProfile and print the N costliest functions (default 25)",
    )
    args = parser.parse_args()
    if args.rows < 1:
        parser.error("--rows must be at least 1")

    with harness.workspace("sqlite", keep=False, prefix="bench-import") as space:
        source = space.directory / "sims.csv"
        started = time.perf_counter()
        lines = (row(n, args.profile_every) for n in range(args.rows))
        harness.write_csv(source, lines, COLUMNS)
        print(
            f"generated {args.rows:,} rows ({source.stat().st_size / 1e6:,.1f} MB) "
            f"in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )

        engine = space.engine()
        try:
            upgrade(engine)
            clock = SystemClock()
            account_id = accounts.create_account(engine, clock, "Benchmark", actor=ADMIN_CLI).id

            profiler = cProfile.Profile() if args.cprofile else None
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            report: ImportReport = import_csv(
                engine, source, account_id, clock.now(), actor=ADMIN_CLI
            )
            if profiler:
                profiler.disable()
            seconds = time.perf_counter() - started

            with engine.connect() as conn:
                stored = sims.count_sims(conn, account_id)
        finally:
            engine.dispose()

    if report.errors or report.imported != args.rows or stored != args.rows:
        print(
            f"unexpected result: {report.imported} imported, {stored} stored, "
            f"{len(report.errors)} errors (first: {report.errors[:3]})",
            file=sys.stderr,
        )
        return 1
    print(f"rows: {report.imported}")
    print(f"seconds: {seconds:.2f}")
    print(f"rows/s: {report.imported / seconds:,.0f}")
    if profiler:
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(args.cprofile)
        stats.sort_stats("tottime").print_stats(args.cprofile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
