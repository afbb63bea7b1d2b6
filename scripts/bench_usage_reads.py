#!/usr/bin/env python3
"""Usage reads and storage: one SIM's 90 days by day, an account's top 20 SIMs of a month among
N, and the bytes an aggregate row takes, beside the bare queries in the same run.

    .venv/bin/python scripts/bench_usage_reads.py [--database sqlite|postgresql] [--sims N]
                                                  [--repeat N] [--keep]

A fresh database with N Active SIMs of one account, each with a month of usage (one monthly
row each), 90 days of daily rows for 10,000 of them, and one hour of hourly rows for every SIM
(to measure what a row takes). Timed, each ``--repeat`` times (medians, and the slowest):

- ``m2m.usage_views.sim_usage``: what ``GET /simcards/{iccid}/usage?granularity=day`` reads
  for 90 days (the SIM and its account, the days, the current day and month for the meters),
  beside the bare primary-key range of the same 90 rows through the driver;
- ``m2m.usage_views.account_usage``: what ``GET /usage?group_by=sim&sort=data&limit=20`` reads
  for the month, beside the bare ``ORDER BY data … LIMIT 20`` of the same month's rows;
- ``m2m.usage_overview.usage_overview``: what the console's overview reads (30 days from the
  account's day totals, the month's totals, its 10 largest data users), beside the bare sum of
  the same 30 days over the SIMs' daily rows (what the overview summed before the account's
  day totals).

Storage: the database's own measure of each aggregate table (``pg_total_relation_size``, or the
pages SQLite's file grew by when the rows were written) divided by its rows, and what a month of
hourly rows for 1,000,000 SIMs would take if every SIM had usage every hour (720 rows each: the
ceiling; SIMs idle for an hour have no row).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import harness
from sqlalchemy import Connection, text

from m2m.storage.migrate import upgrade
from m2m.usage import Granularity
from m2m.usage_overview import usage_overview
from m2m.usage_views import account_usage, sim_usage

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
MONTH = date(2026, 11, 1)
DAILY_SIMS = 10_000
DAYS = 90
MONTH_HOURS = 720


def series(postgresql: bool, count: int) -> str:
    """A FROM clause of ``n`` = 1..count."""
    if postgresql:
        return f"generate_series(1::bigint, {count}::bigint) AS g(n)"
    return (
        f"(WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {count}) "
        "SELECT n FROM g) AS g"
    )


def fill(conn: Connection, postgresql: bool, sims: int) -> int:
    """The account, its SIMs and their usage (see the module); the account's id."""
    account_id = conn.execute(
        text("INSERT INTO accounts (name, created_at) VALUES ('bench', :now) RETURNING id"),
        {"now": NOW},
    ).scalar_one()
    if postgresql:
        iccid, imsi, msisdn = (
            "'8932' || lpad(n::text, 15, '0')",
            "'20601' || lpad(n::text, 10, '0')",
            "'32' || lpad(n::text, 10, '0')",
        )
        profile = '\'{"DataService": {"MonthlyTreshold": 100}}\'::json'
    else:
        iccid, imsi, msisdn = (
            "printf('8932%015d', n)",
            "printf('20601%010d', n)",
            "printf('32%010d', n)",
        )
        profile = '\'{"DataService": {"MonthlyTreshold": 100}}\''
    conn.execute(
        text(
            "INSERT INTO sim_cards (id, account_id, iccid, imsi, msisdn, state, profile, "
            f"created_at, updated_at) SELECT n, :account, {iccid}, {imsi}, {msisdn}, 'Active', "
            f"{profile}, :now, :now FROM {series(postgresql, sims)}"
        ),
        {"account": account_id, "now": NOW},
    )
    counters = "(n * 7919) % 50000000, (n * 104729) % 900000000, n % 7, n % 5, (n * 31) % 3600"
    columns = "data_up_bytes, data_down_bytes, sms_out, sms_in, voice_seconds"
    conn.execute(
        text(
            f"INSERT INTO usage_monthly (sim_id, month, account_id, {columns}) "
            f"SELECT n, :month, :account, {counters} FROM {series(postgresql, sims)}"
        ),
        {"month": MONTH, "account": account_id},
    )
    if postgresql:
        day = "(CAST(:last AS date) - CAST(n % 90 AS integer))"
        hour = ":hour"
    else:
        day = "date(:last, '-' || (n % 90) || ' days')"
        hour = ":hour"
    daily = min(DAILY_SIMS, sims) * DAYS
    conn.execute(
        text(
            f"INSERT INTO usage_daily (sim_id, day, account_id, {columns}) "
            f"SELECT n / {DAYS} + 1, {day}, :account, {counters} "
            f"FROM {series(postgresql, daily)} WHERE n / {DAYS} + 1 <= {min(DAILY_SIMS, sims)}"
        ),
        {"last": NOW.date(), "account": account_id},
    )
    conn.execute(  # the account's days, as the ingest keeps them
        text(
            f"INSERT INTO usage_account_daily (account_id, day, {columns}) "
            f"SELECT account_id, day, {', '.join(f'SUM({c})' for c in columns.split(', '))} "
            "FROM usage_daily GROUP BY account_id, day"
        )
    )
    conn.execute(
        text(
            f"INSERT INTO usage_hourly (sim_id, hour, {columns}, records) "
            f"SELECT n, {hour}, {counters}, 4 FROM {series(postgresql, sims)}"
        ),
        {"hour": NOW.replace(tzinfo=None) if not postgresql else NOW},
    )
    return int(account_id)


def timed(run: Callable[[], object], repeat: int) -> list[float]:
    run()  # warm: the first call reads the pages from disk
    found = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        found.append((time.perf_counter() - started) * 1000)
    return found


def line(name: str, ours: list[float], bare: list[float], target: str) -> None:
    o, b = statistics.median(ours), statistics.median(bare)
    print(
        f"{name}: {o:.2f} ms (slowest {max(ours):.2f}), bare query {b:.2f} ms "
        f"(slowest {max(bare):.2f}), ratio {o / b:.1f}; target {target}",
        flush=True,
    )


def sizes(conn: Connection, postgresql: bool) -> dict[str, float]:
    """Bytes per row of each aggregate table, indexes included."""
    found = {}
    for name in ("usage_hourly", "usage_daily", "usage_monthly"):
        rows = conn.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
        if postgresql:
            size = conn.execute(text(f"SELECT pg_total_relation_size('{name}')")).scalar_one()
        else:  # the pages of the table and its indexes (dbstat: SQLite's own page accounting)
            size = conn.execute(
                text(
                    "SELECT SUM(pgsize) FROM dbstat WHERE name = :t OR name IN (SELECT name "
                    "FROM sqlite_master WHERE type = 'index' AND tbl_name = :t)"
                ),
                {"t": name},
            ).scalar_one()
        found[name] = size / rows
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--sims", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    postgresql = args.database == "postgresql"
    with harness.workspace(args.database, args.keep, "bench-usage-reads") as space:
        engine = space.engine()
        upgrade(engine)
        started = time.perf_counter()
        with engine.begin() as conn:
            account_id = fill(conn, postgresql, args.sims)
        with engine.connect() as conn:
            if postgresql:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM ANALYZE"
                )
            else:
                conn.exec_driver_sql("ANALYZE")
        print(f"{args.sims:,} SIMs filled in {time.perf_counter() - started:.0f} s", flush=True)

        first_iccid = f"8932{1:015d}"
        last_day = NOW.date()

        def days_ours() -> object:
            return sim_usage(
                engine,
                account_id,
                first_iccid,
                Granularity.DAY,
                last_day - timedelta(DAYS - 1),
                last_day,
                NOW,
            )

        def top_ours() -> object:
            return account_usage(
                engine,
                account_id,
                group_by="sim",
                first=MONTH,
                last=last_day,
                sort="data",
                limit=20,
                cursor=None,
                now=NOW,
            )

        def bare(statement: str, parameters: dict[str, object]) -> Callable[[], object]:
            def run() -> object:
                with engine.connect() as conn:
                    return conn.execute(text(statement), parameters).all()

            return run

        days_bare = bare(
            "SELECT day, data_up_bytes, data_down_bytes, sms_out, sms_in, voice_seconds "
            "FROM usage_daily WHERE sim_id = 1 AND day >= :first AND day <= :last ORDER BY day",
            {"first": last_day - timedelta(DAYS - 1), "last": last_day},
        )
        top_bare = bare(
            "SELECT sim_id FROM usage_monthly WHERE account_id = :account AND month = :month "
            "ORDER BY data_up_bytes + data_down_bytes DESC LIMIT 20",
            {"account": account_id, "month": MONTH},
        )
        line(
            "one SIM, 90 days by day",
            timed(days_ours, args.repeat),
            timed(days_bare, args.repeat),
            "10 ms",
        )
        line(
            f"top 20 of {args.sims:,} SIMs, a month",
            timed(top_ours, args.repeat // 3 or 1),
            timed(top_bare, args.repeat // 3 or 1),
            "1 s on PostgreSQL",
        )

        def overview_ours() -> object:
            with engine.connect() as conn:
                return usage_overview(conn, account_id, NOW)

        overview_bare = bare(
            "SELECT day, SUM(data_up_bytes + data_down_bytes) FROM usage_daily "
            "WHERE account_id = :account AND day >= :first AND day <= :last GROUP BY day",
            {"account": account_id, "first": last_day - timedelta(29), "last": last_day},
        )
        line(
            "console overview (30 days, month, top 10)",
            timed(overview_ours, args.repeat // 3 or 1),
            timed(overview_bare, args.repeat // 3 or 1),
            "(bare: the 30 days summed over the SIMs)",
        )
        with engine.connect() as conn:
            per_row = sizes(conn, postgresql)
        for name, size in per_row.items():
            print(f"{name}: {size:.0f} bytes a row, indexes included")
        month = per_row["usage_hourly"] * MONTH_HOURS * 1_000_000
        print(f"a month of hourly rows for 1,000,000 SIMs, every hour used: {month / 1e9:.0f} GB")
        engine.dispose()


if __name__ == "__main__":
    main()
