"""An account's callback configuration: URL, custom headers, the version of its signing secret
(the secret itself is derived, never stored; see ``m2m.callbacks.signing``), and the state of the
URL's circuit breaker (its rules are ``m2m.callbacks.breaker``'s)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, insert, select, update

from m2m.storage.tables import callback_configs


@dataclass(frozen=True, slots=True)
class CallbackConfig:
    url: str | None
    headers: dict[str, str]
    signing_key_version: int


@dataclass(frozen=True, slots=True)
class BreakerState:
    failures: int = 0  # consecutive unhealthy attempts
    trips: int = 0  # times opened in a row, without a healthy answer between
    open_until: datetime | None = None  # None: closed; then open until this time
    probe_id: str | None = None  # the message out as the probe (open_until is its lease)


_BREAKER_CLOSED = {
    "breaker_failures": 0,
    "breaker_trips": 0,
    "breaker_open_until": None,
    "breaker_probe_id": None,
}


def get_callback_config(conn: Connection, account_id: int) -> CallbackConfig | None:
    row = conn.execute(
        select(
            callback_configs.c.url,
            callback_configs.c.headers,
            callback_configs.c.signing_key_version,
        ).where(callback_configs.c.account_id == account_id)
    ).one_or_none()
    return CallbackConfig(**row._mapping) if row else None


def set_callback_config(
    conn: Connection, account_id: int, url: str, headers: dict[str, str], now: datetime
) -> None:
    updated = conn.execute(
        update(callback_configs)
        .where(callback_configs.c.account_id == account_id)
        .values(url=url, headers=headers, updated_at=now, **_BREAKER_CLOSED)
    )
    if updated.rowcount == 0:
        conn.execute(
            insert(callback_configs).values(
                account_id=account_id, url=url, headers=headers, updated_at=now
            )
        )


def bump_version(conn: Connection, account_id: int, now: datetime) -> int:
    """Move the account to its next signing-secret version; returns that version."""
    updated = conn.execute(
        update(callback_configs)
        .where(callback_configs.c.account_id == account_id)
        .values(
            signing_key_version=callback_configs.c.signing_key_version + 1,
            signing_key_rotated_at=now,
            updated_at=now,
        )
    )
    if updated.rowcount == 0:
        # No callback configured yet: version 1 was the implicit one; 2 replaces it.
        conn.execute(
            insert(callback_configs).values(
                account_id=account_id,
                url=None,
                headers={},
                signing_key_version=2,
                signing_key_rotated_at=now,
                updated_at=now,
            )
        )
    return int(
        conn.execute(
            select(callback_configs.c.signing_key_version).where(
                callback_configs.c.account_id == account_id
            )
        ).scalar_one()
    )


# --- the URL's circuit breaker ----------------------------------------------------------------


def breakers(
    conn: Connection, account_ids: Sequence[int], *, lock: bool = False
) -> dict[int, tuple[str | None, BreakerState]]:
    """Each account's URL and breaker; accounts without a configuration are left out. With
    ``lock``, the rows stay locked until the caller's transaction ends (PostgreSQL; SQLite's
    write transactions are serialised), taken in account order so that two workers locking the
    same accounts cannot deadlock."""
    query = (
        select(
            callback_configs.c.account_id,
            callback_configs.c.url,
            callback_configs.c.breaker_failures,
            callback_configs.c.breaker_trips,
            callback_configs.c.breaker_open_until,
            callback_configs.c.breaker_probe_id,
        )
        .where(callback_configs.c.account_id.in_(sorted(set(account_ids))))
        .order_by(callback_configs.c.account_id)
    )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {
        row.account_id: (
            row.url,
            BreakerState(
                row.breaker_failures,
                row.breaker_trips,
                row.breaker_open_until,
                row.breaker_probe_id,
            ),
        )
        for row in conn.execute(query)
    }


def save_breaker(conn: Connection, account_id: int, state: BreakerState) -> None:
    save_breaker_of(conn, callback_configs.c.account_id, account_id, state)


def take_probe(
    conn: Connection, account_id: int, delivery_id: str, now: datetime, lease_until: datetime
) -> bool:
    """Make ``delivery_id`` the probe of the account's open breaker (``take_probe_of``)."""
    return take_probe_of(
        conn, callback_configs.c.account_id, account_id, delivery_id, now, lease_until
    )


# The same breaker columns live in every endpoint's row (an account's callback configuration,
# an event subscription): these take the row by its key column.


def breaker_state(row: Any) -> BreakerState:
    """The breaker of a row read with its ``breaker_*`` columns."""
    return BreakerState(
        row.breaker_failures or 0,
        row.breaker_trips or 0,
        row.breaker_open_until,
        row.breaker_probe_id,
    )


def save_breaker_of(conn: Connection, key: Column[Any], value: int, state: BreakerState) -> None:
    conn.execute(
        update(key.table)
        .where(key == value)
        .values(
            breaker_failures=state.failures,
            breaker_trips=state.trips,
            breaker_open_until=state.open_until,
            breaker_probe_id=state.probe_id,
        )
    )


def take_probe_of(
    conn: Connection,
    key: Column[Any],
    value: int,
    delivery_id: str,
    now: datetime,
    lease_until: datetime,
) -> bool:
    """Make ``delivery_id`` the probe of the row's open breaker whose cool-down has ended,
    leased until ``lease_until``; False when another worker took the probe first: the
    conditional UPDATE lets only one through on either database. On PostgreSQL a row another
    transaction holds is skipped, not waited for (that worker is probing or recording it), so a
    claim never waits on a breaker while holding others."""
    table = key.table
    row = key == value
    if conn.dialect.name == "postgresql":
        free = select(key).where(row).with_for_update(skip_locked=True)
        row = key.in_(free.scalar_subquery())
    taken = conn.execute(
        update(table)
        .where(row, table.c.breaker_open_until <= now)
        .values(breaker_open_until=lease_until, breaker_probe_id=delivery_id)
    )
    return taken.rowcount == 1
