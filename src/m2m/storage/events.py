"""The event log's storage: events written in their change's transaction, read by cursor,
purged by age.

Writers pass the ``Connection`` of the change an event describes, so the event commits or rolls
back with it. A batch of changes (a worker's batch of items) is one executemany, not a statement
per event.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    Text,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
)

from m2m.storage.prepared import PreparedStatement, insert_values
from m2m.storage.tables import events, sim_cards


@dataclass(frozen=True, slots=True)
class NewEvent:
    account_id: int
    type: str
    version: int
    occurred_at: datetime
    data: dict[str, Any]
    sim_id: int | None = None
    sim: dict[str, Any] | None = None  # {"ICCID", "MSISDN", "labels"} as it was


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    account_id: int
    type: str
    version: int
    occurred_at: datetime
    sim: dict[str, Any] | None
    data: dict[str, Any]
    sim_id: int | None = None  # the SIM's row, while it exists (the console links to it)

    def envelope(self) -> dict[str, Any]:
        """The event as consumers receive it (``m2m.events.Event``)."""
        return {
            "id": str(self.id),
            "type": self.type,
            "version": self.version,
            "occurred_at": self.occurred_at,
            "account": self.account_id,
            "sim": self.sim,
            "data": self.data,
        }


def sim_snapshot(iccid: str, msisdn: str, labels: dict[str, str] | None) -> dict[str, Any]:
    """The envelope's ``sim``."""
    return {"ICCID": iccid, "MSISDN": msisdn, "labels": dict(labels or {})}


# The second key is the account: the first of the two-key advisory locks is "M2M" + 1 (the
# acceptance lock of ``request_intake`` is "M2M" itself).
_EVENT_LOCK_NAMESPACE = 0x4D324D + 1


def serialize_writes(conn: Connection, account_ids: Collection[int]) -> None:
    """Make the accounts' events commit in the order of their ids, until the transaction ends.

    Readers page by ``id > cursor``. On PostgreSQL ids come from a sequence when a row is
    inserted, and two transactions can commit in the opposite order: a reader that saw the
    higher id first would skip the lower one for ever. A transaction-scoped advisory lock per
    account, taken before the ids are drawn and held to the commit, orders an account's event
    writers (readers read one account). The locks are taken in account order, all at once, so
    writers of several accounts cannot deadlock; taking them again in the same transaction costs
    nothing. SQLite's write transactions are serialised already.
    """
    if conn.dialect.name == "postgresql":
        for account_id in sorted(set(account_ids)):
            _LOCK_ACCOUNT.run(conn, {"account_id": account_id})


# Built once and prepared (``storage.prepared``): both run with every batch of items and every
# SIM update, where building a statement, then running it through SQLAlchemy's execution layer,
# cost more CPU than the database spent on it.
_LOCK_ACCOUNT = PreparedStatement(
    select(
        func.pg_advisory_xact_lock(_EVENT_LOCK_NAMESPACE, bindparam("account_id", type_=Integer))
    )
)
_INSERTED = ("account_id", "type", "version", "occurred_at", "sim_id", "sim", "data")
_INSERT_ONE = PreparedStatement(insert_values(events, _INSERTED))
# Several at once through SQLAlchemy: on PostgreSQL it sends them as one multi-row INSERT, where
# the driver's executemany would run the statement once per event.
_INSERT_MANY = insert(events)


def record(conn: Connection, new_events: Sequence[NewEvent]) -> None:
    """Store events on ``conn``'s transaction: they commit, or roll back, with their change.
    One statement whatever their number. Takes the accounts' write order (see
    ``serialize_writes``): a caller that records events of several accounts in several calls
    must call ``serialize_writes`` with all of them first."""
    if not new_events:
        return
    serialize_writes(conn, {e.account_id for e in new_events})
    rows = [
        {
            "account_id": e.account_id,
            "type": e.type,
            "version": e.version,
            "occurred_at": e.occurred_at,
            "sim_id": e.sim_id,
            "sim": e.sim,
            "data": e.data,
        }
        for e in new_events
    ]
    if len(rows) == 1:  # a SIM update's: the common case
        _INSERT_ONE.run(conn, rows[0])
    else:
        conn.execute(_INSERT_MANY, rows)


def sim_of(conn: Connection, account_id: int, iccid: str) -> int | None:
    """The id of the account's SIM with this ICCID (None: none such in this account)."""
    return conn.execute(
        select(sim_cards.c.id).where(
            sim_cards.c.account_id == account_id, sim_cards.c.iccid == iccid
        )
    ).scalar_one_or_none()


def sim_numbered(conn: Connection, account_id: int, number: str) -> int | None:
    """The id of the account's SIM whose ICCID or MSISDN is ``number`` (the console's filter:
    people know a SIM by either); None: none such in this account."""
    return conn.execute(
        select(sim_cards.c.id)
        .where(
            sim_cards.c.account_id == account_id,
            or_(sim_cards.c.iccid == number, sim_cards.c.msisdn == number),
        )
        .limit(1)
    ).scalar_one_or_none()


def _account_is(account_id: int, sim_id: int | None) -> ColumnElement[bool]:
    """The tenant condition. With a SIM, written so that no index can serve it (``+ 0``): the
    SIM's ``(sim_id, id)`` range is the narrow one, and without statistics (a SQLite file nobody
    ran ANALYZE on) SQLite's planner walked the account's whole ``(account_id, id)`` range
    instead, 1.5 s a page among 10,000,000 events. The condition still filters every row."""
    if sim_id is None:
        return events.c.account_id == account_id
    return events.c.account_id + 0 == account_id


def _page_query(
    columns: Sequence[Any],
    account_id: int,
    after: int,
    limit: int,
    types: Collection[str] | None,
    sim_id: int | None,
) -> Select[Any]:
    query = (
        select(*columns)
        .where(_account_is(account_id, sim_id), events.c.id > after)
        .order_by(events.c.id)
        .limit(limit)
    )
    if types is not None:
        query = query.where(events.c.type.in_(sorted(types)))
    if sim_id is not None:
        query = query.where(events.c.sim_id == sim_id)
    return query


# An event's envelope as JSON text, assembled by the database around the stored documents (the
# answer of ``events?after=`` and the body a subscription receives): the page's rows come back
# as one text each, not as seven values that Python parses (a timestamp among them), formats
# and joins again — that per-row work was most of a page's time in the API process. The keys in
# the order of ``StoredEvent.envelope``; ``occurred_at`` as ``datetime.isoformat`` writes it
# (no fraction when the microseconds are 0) with ``Z``. The types are the catalog's names.
_ENVELOPE_SQL = {
    "postgresql": (
        """'{"id":"' || events.id || '","type":' || to_json(events.type)::text"""
        """ || ',"version":' || events.version || ',"occurred_at":"'"""
        """ || to_char(events.occurred_at AT TIME ZONE 'UTC', CASE"""
        """ WHEN date_trunc('second', events.occurred_at) = events.occurred_at"""
        """ THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END)"""
        """ || '","account":' || events.account_id"""
        """ || ',"sim":' || coalesce(events.sim::text, 'null')"""
        """ || ',"data":' || events.data::text || '}'"""
    ),
    # SQLite keeps UTC as text, 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's storage format).
    "sqlite": (
        """'{"id":"' || events.id || '","type":' || json_quote(events.type)"""
        """ || ',"version":' || events.version || ',"occurred_at":"'"""
        """ || replace(substr(events.occurred_at, 1, 19), ' ', 'T')"""
        """ || CASE WHEN substr(events.occurred_at, 21) IN ('', '000000') THEN ''"""
        """ ELSE '.' || substr(events.occurred_at, 21) END"""
        """ || 'Z","account":' || events.account_id"""
        """ || ',"sim":' || coalesce(events.sim, 'null')"""
        """ || ',"data":' || events.data || '}'"""
    ),
}
_WIRE_COLUMNS = {
    dialect: (events.c.id, literal_column(envelope, Text))
    for dialect, envelope in _ENVELOPE_SQL.items()
}


def read_wire(
    conn: Connection,
    account_id: int,
    *,
    after: int,
    limit: int,
    types: Collection[str] | None = None,
    sim_id: int | None = None,
) -> list[tuple[int, str]]:
    """What ``read`` finds, each event as (id, its envelope as JSON text) for the wire."""
    if types is not None and not types:
        return []
    columns = _WIRE_COLUMNS[conn.dialect.name]
    query = _page_query(columns, account_id, after, limit, types, sim_id)
    return [(event_id, envelope) for event_id, envelope in conn.execute(query)]


_NEXT_OCCURRED_AT = (
    select(events.c.occurred_at)
    .where(events.c.account_id == bindparam("account"), events.c.id > bindparam("after"))
    .order_by(events.c.id)
    .limit(1)
)


def next_occurred_at(conn: Connection, account_id: int, after: int) -> datetime | None:
    """When the account's first event after ``after`` occurred (None: there is none)."""
    found = conn.execute(_NEXT_OCCURRED_AT, {"account": account_id, "after": after}).first()
    return found[0] if found is not None else None


_COLUMNS = (
    events.c.id,
    events.c.account_id,
    events.c.type,
    events.c.version,
    events.c.occurred_at,
    events.c.sim,
    events.c.data,
    events.c.sim_id,
)


def read(
    conn: Connection,
    account_id: int,
    *,
    after: int,
    limit: int,
    types: Collection[str] | None = None,
    sim_id: int | None = None,
) -> list[StoredEvent]:
    """The account's events with an id above ``after``, oldest first, at most ``limit``.

    ``types`` (exact types; None: all) and ``sim_id`` filter. Every form is an index range in id
    order: (account_id, id), (account_id, type, id) per type, or (sim_id, id)."""
    if types is not None and not types:
        return []
    query = _page_query(_COLUMNS, account_id, after, limit, types, sim_id)
    return [StoredEvent(*row) for row in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which of an account's events to list newest first (the console); empty selects all."""

    types: Collection[str] | None = None  # exact types (``m2m.events.selected_types``)
    sim_id: int | None = None
    since: datetime | None = None  # occurred at or after
    until: datetime | None = None  # occurred before


def newest_first(
    conn: Connection,
    account_id: int,
    wanted: EventFilter,
    *,
    before_id: int | None,
    limit: int,
) -> list[StoredEvent]:
    """Up to ``limit`` of the account's events, newest first, below ``before_id`` (the last id
    of the previous page). The same indexes as ``read``, walked backwards; a time range filters
    that walk (ids and times grow together, but not strictly, so the range is not turned into
    an id range), so a range far in the past costs a walk through everything after it."""
    if wanted.types is not None and not wanted.types:
        return []
    query = select(*_COLUMNS).where(_account_is(account_id, wanted.sim_id))
    if before_id is not None:
        query = query.where(events.c.id < before_id)
    if wanted.types is not None:
        query = query.where(events.c.type.in_(sorted(wanted.types)))
    if wanted.sim_id is not None:
        query = query.where(events.c.sim_id == wanted.sim_id)
    if wanted.since is not None:
        query = query.where(events.c.occurred_at >= wanted.since)
    if wanted.until is not None:
        query = query.where(events.c.occurred_at < wanted.until)
    rows = conn.execute(query.order_by(events.c.id.desc()).limit(limit))
    return [StoredEvent(*row) for row in rows]
