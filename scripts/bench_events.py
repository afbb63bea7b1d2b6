#!/usr/bin/env python3
"""What a page of the event log costs with many events stored: ``GET /events?after=&limit=1000``
over HTTP from a database holding N events (10,000,000 by default) of 10 accounts.

    .venv/bin/python scripts/bench_events.py [--databases sqlite,postgresql] [--events N]
        [--clients C] [--duration S] [--reuse DIR] [--postgres-url URL] [--keep]

For each database: a fresh one (harness.workspace), migrated, 10 accounts (API keys; the first
has a permanent token) of 1,000 SIMs each, and N events written with SQL in the database itself
(``generate_series`` on PostgreSQL, a recursive CTE on SQLite; a million rows a statement, the
indexes built once after, as a restore would): the accounts interleaved (each account's events
spread over the whole table), 80% ``sim.state_changed``, 15% ``sim.updated``, 5%
``request.completed``, each event of a SIM of its account. Then ANALYZE.

1. The query plans (EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on SQLite) of a page after a
   cursor in the middle of the log: all types, and ``type=sim.*``.
2. ``m2m serve --no-worker`` and a FastAPI hello-world served the same way; C clients (default
   1: the latency of one page, not a queue) for S seconds each: the hello-world (the ceiling of
   this machine and stack), then pages of 1,000 of the first account from random cursors for
   each query shape:

   - ``all types``: ``(account_id, id)``;
   - ``type=sim.*``: two exact types on ``(account_id, type, id)``;
   - ``type=request.completed``: a rare type (1 event in 20 of the account's);
   - ``sim=<ICCID>``: one SIM's events on ``(sim_id, id)`` (about 1,000 over the whole log).

   Printed: p50 and p99 latency, req/s and the ratio to the hello-world. Every answer must be a
   200 (a page that is not is printed).

``--reuse DIR`` keeps the filled database (a SQLite file in DIR, or a PostgreSQL template database)
and its credentials, and later runs with the same ``--events`` start from a copy of it: writing
10,000,000 events takes minutes, comparing two versions of the read path should not.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import bench_http
import bench_inventory
import harness
from sqlalchemy import Connection, func, insert, select, text

from m2m import accounts
from m2m.audit import ADMIN_CLI
from m2m.clock import SystemClock
from m2m.events import selected_types
from m2m.storage import events as event_store
from m2m.storage.engine import make_engine
from m2m.storage.migrate import upgrade
from m2m.storage.tables import events, sim_cards

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
ACCOUNTS = 10
SIMS_PER_ACCOUNT = 1_000
CHUNK = 1_000_000  # events a statement
PAGE = 1_000
TRACKING_NUMBER = "7f1c3e5a-9a53-4a43-8f0e-1b3c2d4e5f60"


def log(message: str) -> None:
    print(message, flush=True)


# --- the log ----------------------------------------------------------------------------------


def add_accounts_and_sims(space: harness.Workspace) -> tuple[list[int], int, str, str]:
    """The accounts (ids consecutive) and their SIMs (each account's ids consecutive, in account
    order); returns the account ids, the first SIM id, the first account's API key and token."""
    engine = make_engine(space.database_url)
    clock = SystemClock()
    try:
        created = [
            accounts.create_account(engine, clock, f"events bench {n}", actor=ADMIN_CLI)
            for n in range(ACCOUNTS)
        ]
        token = accounts.create_permanent_token(
            engine, clock, created[0].id, "bench", actor=ADMIN_CLI
        )
        ids = [a.id for a in created]
        assert ids == list(range(ids[0], ids[0] + ACCOUNTS)), ids
        with engine.begin() as conn:
            for n, account_id in enumerate(ids):
                conn.execute(
                    insert(sim_cards),
                    [
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
                    ],
                )
            first, last = conn.execute(
                select(func.min(sim_cards.c.id), func.max(sim_cards.c.id))
            ).one()
        assert last - first + 1 == ACCOUNTS * SIMS_PER_ACCOUNT, (first, last)
        return ids, int(first), created[0].secret, token.secret
    finally:
        engine.dispose()


# The n-th event (n from 0): its account is n % 10 (interleaved), its kind and SIM are drawn from
# a multiplicative hash of n (the same rows on both databases). ``:first_account``/``:first_sim``
# are the first ids; ``:epoch`` is NOW in Unix seconds (an event every millisecond).
_KIND = "((n * 2654435761) % 100)"
_SIM = "(:first_sim + (n % 10) * 1000 + ((n * 40503) / 10) % 1000)"
_STATE_DATA = (
    "'from', 'Active', 'to', 'Deactivated', 'cause', 'request', "
    f"'TrackingNumber', '{TRACKING_NUMBER}', 'operation', 'deactivation'"
)
_COMPLETED_DATA = (
    f"'TrackingNumber', '{TRACKING_NUMBER}', 'operation', 'deactivation', 'devices', 100"
)
_UPDATED_DATA = '{"fields":["CostCenter"],"changes":{"CostCenter":{"before":"a","after":"b"}}}'
_COLUMNS = "account_id, type, version, occurred_at, sim_id, sim, data"

POSTGRES_FILL = f"""
INSERT INTO events ({_COLUMNS})
SELECT :first_account + n % 10,
       CASE WHEN k < 5 THEN 'request.completed' WHEN k < 20 THEN 'sim.updated'
            ELSE 'sim.state_changed' END,
       1,
       to_timestamp(:epoch) + n * interval '1 millisecond',
       CASE WHEN k < 5 THEN NULL ELSE s END,
       CASE WHEN k < 5 THEN NULL ELSE json_build_object(
           'ICCID', '8932' || lpad(s::text, 16, '0'), 'MSISDN', '32' || lpad(s::text, 9, '0'),
           'labels', json_build_object('site', 'gent')) END,
       CASE WHEN k < 5 THEN json_build_object({_COMPLETED_DATA},
                                              'results', json_build_object('Success', 100))
            WHEN k < 20 THEN '{_UPDATED_DATA}'::json
            ELSE json_build_object({_STATE_DATA}) END
FROM (SELECT n, {_KIND} AS k, {_SIM} AS s
      FROM generate_series(CAST(:start AS bigint), CAST(:stop AS bigint) - 1) AS g(n)) AS e
"""

SQLITE_FILL = f"""
WITH RECURSIVE g(n) AS (SELECT :start UNION ALL SELECT n + 1 FROM g WHERE n + 1 < :stop),
e(n, k, s) AS (SELECT n, {_KIND}, {_SIM} FROM g)
INSERT INTO events ({_COLUMNS})
SELECT :first_account + n % 10,
       CASE WHEN k < 5 THEN 'request.completed' WHEN k < 20 THEN 'sim.updated'
            ELSE 'sim.state_changed' END,
       1,
       printf('%s.%06d', datetime(:epoch + n / 1000, 'unixepoch'), (n % 1000) * 1000),
       CASE WHEN k < 5 THEN NULL ELSE s END,
       CASE WHEN k < 5 THEN NULL ELSE json_object(
           'ICCID', printf('8932%016d', s), 'MSISDN', printf('32%09d', s),
           'labels', json_object('site', 'gent')) END,
       CASE WHEN k < 5 THEN json_object({_COMPLETED_DATA},
                                        'results', json_object('Success', 100))
            WHEN k < 20 THEN '{_UPDATED_DATA}'
            ELSE json_object({_STATE_DATA}) END
FROM e
"""


def fill(conn: Connection, total: int, first_account: int, first_sim: int) -> None:
    """``total`` events, without the indexes (built once at the end: as fast as a restore)."""
    statement = text(POSTGRES_FILL if conn.dialect.name == "postgresql" else SQLITE_FILL)
    for index in events.indexes:
        index.drop(conn)
    started = time.perf_counter()
    for start in range(0, total, CHUNK):
        stop = min(start + CHUNK, total)
        conn.execute(
            statement,
            {
                "start": start,
                "stop": stop,
                "first_account": first_account,
                "first_sim": first_sim,
                "epoch": int(NOW.timestamp()),
            },
        )
        conn.commit()
        rate = stop / (time.perf_counter() - started)
        print(f"  … {stop:,} events ({rate:,.0f}/s)", file=sys.stderr, flush=True)
    for index in events.indexes:
        index.create(conn)
    conn.commit()


@dataclass(frozen=True)
class Filled:
    """What a filled database's run needs: the measured account, its API key and its token."""

    account: int
    api_key: str
    token: str


def populate(space: harness.Workspace, total: int) -> Filled:
    """Migrate and fill."""
    engine = make_engine(space.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    account_ids, first_sim, api_key, token = add_accounts_and_sims(space)
    started = time.perf_counter()
    with space.connect() as conn:
        fill(conn, total, account_ids[0], first_sim)
    log(f"  {total:,} events and their indexes written in {time.perf_counter() - started:,.0f} s")
    if space.database_url.startswith("postgresql"):
        with space.connect(autocommit=True) as conn:
            conn.execute(text("VACUUM ANALYZE events"))
    else:
        with space.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    return Filled(account_ids[0], api_key, token)


def explain(space: harness.Workspace, name: str, read: Callable[[Connection], object]) -> None:
    """The plan of the statement ``read`` runs."""
    with space.connect() as conn:
        plan = harness.query_plan(conn, read)
    log(f"  the plan of {name}:")
    for line in plan:
        log(f"    {line}")


# --- a run ------------------------------------------------------------------------------------


def run(kind: str, args: argparse.Namespace) -> None:
    log(f"{kind}: {args.events:,} events, {ACCOUNTS} accounts")
    cache = (
        bench_http.Cache.of(
            kind, args.events, args.reuse / "events", args.postgres_url, name="bench_events"
        )
        if args.reuse
        else None
    )
    cached = cache if cache and cache.exists() else None
    if cached:
        log(f"  {cached.announce()}")
    with harness.workspace(
        kind,
        args.keep,
        "bench-events",
        server=args.postgres_url,
        template=cached.copy if cached else None,
    ) as space:
        if cached:
            filled = Filled(**json.loads(cached.credentials.read_text()))
        else:
            filled = populate(space, args.events)
            if cache:
                cache.save(space, filled)
        account, api_key, token = filled.account, filled.api_key, filled.token
        middle = args.events // 2
        sim_iccid = f"89{0:02d}{0:015d}"  # the account's first SIM
        explain(
            space,
            "a page of all types",
            lambda conn: event_store.read_wire(conn, account, after=middle, limit=PAGE),
        )
        explain(
            space,
            "a page of type=sim.*",
            lambda conn: event_store.read_wire(
                conn, account, after=middle, limit=PAGE, types=selected_types(["sim.*"])
            ),
        )
        env = harness.m2m_env(space, bench_http.SERVER_SETTINGS, sandbox=False)
        db = bench_http.Database(kind, space, env, bench_http.Credentials("", "", api_key))
        headers = {**bench_http.PROXY_HEADERS, **harness.api_headers(token, api_key)}
        hello = bench_http.start_hello(db, 1)
        try:
            ceiling = bench_inventory.load(
                hello.base_url, ["/"], bench_http.PROXY_HEADERS, args.clients, args.duration
            )
        finally:
            hello.stop()
        log(bench_inventory.line("hello-world (the ceiling)", ceiling, None))
        chosen = random.Random(14)
        # Cursors anywhere but the last 20,000 ids: 1,000 of one account's events span 10,000.
        cursors = [chosen.randrange(0, max(1, args.events - 20 * PAGE)) for _ in range(500)]
        url = f"{harness.API}/events?limit={PAGE}&after="
        cases = {
            "all types": [f"{url}{c}" for c in cursors],
            "type=sim.*": [f"{url}{c}&type=sim.*" for c in cursors],
            "type=request.completed": [f"{url}{c}&type=request.completed" for c in cursors],
            "sim=<ICCID>": [f"{url}{c}&sim={sim_iccid}" for c in cursors],
        }
        server = bench_http.start_m2m(db, 1)
        try:
            for name, paths in cases.items():
                result = bench_inventory.load(
                    server.base_url, paths, headers, args.clients, args.duration
                )
                log(bench_inventory.line(name, result, ceiling))
        finally:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--postgres-url", default=harness.POSTGRES_ADMIN_URL)
    parser.add_argument("--reuse", type=Path, help="keep the filled databases in DIR")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args()
    if args.reuse:
        args.reuse = args.reuse.resolve()
    for kind in args.databases.split(","):
        run(kind, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
