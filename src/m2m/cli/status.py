"""``m2m admin status``: what the platform is doing, from the database (whichever host runs the
workers): workers alive and what each holds, the queues and their oldest item, the accounts with
the most callback messages waiting, and the receivers whose breakers are open.

This is where one account's backlog is found: the metrics carry no per-account labels (their
label sets stay bounded), the database has it all."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import typer

from m2m.cli.common import (
    JsonOption,
    console,
    load_settings,
    migrated_engine,
    print_json,
    print_table,
)
from m2m.clock import SystemClock
from m2m.storage import backlog as backlog_store
from m2m.storage import heartbeats as heartbeat_store


def _age(now: datetime, since: datetime | None) -> float | None:
    return None if since is None else round(max(0.0, (now - since).total_seconds()), 1)


def _shown_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return str(timedelta(seconds=round(seconds)))


def status(
    top: Annotated[
        int, typer.Option(min=1, max=1000, help="How many accounts to list by messages waiting.")
    ] = 10,
    as_json: bool = JsonOption,
) -> None:
    """Workers alive, queue depths, the oldest open request, messages waiting per account (top
    N) and open breakers."""
    engine = migrated_engine(load_settings(), create=False)
    try:
        with engine.connect() as conn:
            beats = heartbeat_store.heartbeats(conn)
            found = backlog_store.backlog(conn)
            waiting = backlog_store.messages_waiting_by_account(conn, top)
            breakers = backlog_store.open_breakers(conn)
    finally:
        engine.dispose()
    now = SystemClock().now()
    workers = [
        {
            "name": beat.name,
            "host": beat.host,
            "pid": beat.pid,
            "alive": now - beat.seen_at <= heartbeat_store.ALIVE_WITHIN,
            "started_at": beat.started_at,
            "seen_at": beat.seen_at,
            "items_held": beat.items_held,
            "messages_held": beat.messages_held,
        }
        for beat in beats
    ]
    queues = {
        "items_pending": found.items_pending,
        "items_claimed": found.items_claimed,
        "oldest_open_request_age_seconds": _age(now, found.oldest_open_request_at),
        "messages_pending": found.messages_pending,
        "oldest_message_age_seconds": _age(now, found.oldest_message_at),
        "breakers_open": found.breakers_open,
    }
    accounts = [
        {
            "account_id": a.account_id,
            "name": a.name,
            "messages_pending": a.messages_pending,
            "breaker_open_until": a.breaker_open_until,
        }
        for a in waiting
    ]
    open_breakers = [
        {"account_id": account_id, "url": url, "open_until": until}
        for account_id, url, until in breakers
    ]
    if as_json:
        print_json(
            {
                "workers": workers,
                "queues": queues,
                "messages_waiting_by_account": accounts,
                "breakers_open": open_breakers,
            }
        )
        return
    _print(workers, queues, accounts, open_breakers)


def _print(
    workers: list[dict[str, Any]],
    queues: dict[str, Any],
    accounts: list[dict[str, Any]],
    breakers: list[dict[str, Any]],
) -> None:
    alive = sum(1 for w in workers if w["alive"])
    console.print(f"Workers alive: {alive}", highlight=False)
    if workers:
        print_table(
            "Workers",
            ["name", "host", "pid", "state", "started", "last seen", "items held", "messages"],
            [
                (
                    w["name"],
                    w["host"],
                    w["pid"],
                    "alive" if w["alive"] else "not seen lately",
                    w["started_at"],
                    w["seen_at"],
                    w["items_held"],
                    w["messages_held"],
                )
                for w in workers
            ],
        )
    print_table(
        "Queues",
        ["what", "waiting", "oldest"],
        [
            (
                "lifecycle items (pending / claimed)",
                f"{queues['items_pending']} / {queues['items_claimed']}",
                _shown_age(queues["oldest_open_request_age_seconds"]),
            ),
            (
                "callback messages",
                queues["messages_pending"],
                _shown_age(queues["oldest_message_age_seconds"]),
            ),
            ("breakers open", queues["breakers_open"], ""),
        ],
    )
    if accounts:
        print_table(
            "Messages waiting by account",
            ["account", "name", "messages", "breaker open until"],
            [
                (a["account_id"], a["name"], a["messages_pending"], a["breaker_open_until"])
                for a in accounts
            ],
        )
    if breakers:
        print_table(
            "Open breakers",
            ["account", "callback URL", "open until"],
            [(b["account_id"], b["url"], b["open_until"]) for b in breakers],
        )
