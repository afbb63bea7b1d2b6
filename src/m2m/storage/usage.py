"""Usage storage: counting a batch of records into the hourly, daily and monthly aggregates,
raising each threshold crossing once with its event, and reading the aggregates back.

A batch is counted in one transaction, all or nothing: the batch id (a file's digest, or the
mediation system's id) is claimed first, so a batch sent twice is counted once; the aggregates
are added to with upserts (``INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n``), which
both databases run atomically per row, so concurrent batches for one SIM add up; the crossings
are judged from each period's total after the batch and the batch's own share of it (the row
stays locked by the upsert until the commit, so two batches cannot both see the same before).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, and_, bindparam, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from m2m.events import EventType, usage_data, version_of
from m2m.identifiers import SimState
from m2m.storage import events as event_store
from m2m.storage.tables import (
    accounts,
    sim_cards,
    usage_alerts,
    usage_batches,
    usage_daily,
    usage_hourly,
    usage_monthly,
)
from m2m.usage import (
    COUNTERS,
    Level,
    Period,
    Service,
    Totals,
    crossed,
    day_of,
    hour_of,
    month_of,
    thresholds_of,
)
from m2m.usage_records import UsageRecord

# Identifiers looked up per statement: far below both databases' limits on parameters.
LOOKUP_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class UsageSim:
    id: int
    account_id: int
    iccid: str
    imsi: str
    msisdn: str
    state: str
    labels: dict[str, str]
    thresholds: dict[tuple[Service, Period], int]
    zone: ZoneInfo
    warning_percent: int


@dataclass(frozen=True, slots=True)
class Crossing:
    sim: UsageSim
    service: Service
    period: Period
    period_start: date
    level: Level
    threshold: int
    used: float


@dataclass(slots=True)
class IngestResult:
    counted: int = 0
    duplicate: bool = False  # the batch was counted before: nothing was done
    unknown: list[int] = field(default_factory=list)  # records naming no SIM: nothing was done
    inactive: int = 0  # records counted for SIMs that were not Active
    crossings: list[Crossing] = field(default_factory=list)


def ingest(
    conn: Connection, batch_id: str, records: Sequence[UsageRecord], now: datetime
) -> IngestResult:
    """Count ``records`` as batch ``batch_id`` in ``conn``'s transaction (see the module)."""
    sims = _sims_of(conn, records)
    unknown = [n for n, r in enumerate(records) if sim_key(r) not in sims]
    if unknown:
        return IngestResult(unknown=unknown)
    if not _claim_batch(conn, batch_id, len(records), now):
        return IngestResult(duplicate=True)
    hourly: dict[tuple[int, datetime], Totals] = defaultdict(Totals)
    counts: dict[tuple[int, datetime], list[int]] = defaultdict(lambda: [0, 0])
    daily: dict[tuple[int, date], Totals] = defaultdict(Totals)
    monthly: dict[tuple[int, date], Totals] = defaultdict(Totals)
    result = IngestResult(counted=len(records))
    for record in records:
        sim = sims[sim_key(record)]
        hour = hour_of(record.started_at)
        hourly[(sim.id, hour)] += record.totals
        count = counts[(sim.id, hour)]
        count[0] += 1
        if sim.state != SimState.ACTIVE.value:
            count[1] += 1
            result.inactive += 1
        daily[(sim.id, day_of(record.started_at, sim.zone))] += record.totals
        monthly[(sim.id, month_of(record.started_at, sim.zone))] += record.totals
    owner = {sim.id: sim for sim in sims.values()}
    _add(
        conn,
        usage_hourly,
        "hour",
        [
            {
                "sim_id": sim_id,
                "hour": hour,
                "account_id": owner[sim_id].account_id,
                "records": counts[(sim_id, hour)][0],
                "inactive_records": counts[(sim_id, hour)][1],
                **_counters(totals),
            }
            for (sim_id, hour), totals in hourly.items()
        ],
        extra=("records", "inactive_records"),
    )
    for table, key, parts, period in (
        (usage_daily, "day", daily, Period.DAILY),
        (usage_monthly, "month", monthly, Period.MONTHLY),
    ):
        _add(
            conn,
            table,
            key,
            [
                {"sim_id": sim_id, key: start, "account_id": owner[sim_id].account_id}
                | _counters(totals)
                for (sim_id, start), totals in parts.items()
            ],
        )
        watched = {k: v for k, v in parts.items() if owner[k[0]].thresholds}
        after = _totals(conn, table, key, watched)
        for (sim_id, start), added in watched.items():
            sim = owner[sim_id]
            total = after[(sim_id, start)]
            for (service, threshold_period), threshold in sim.thresholds.items():
                if threshold_period is not period:
                    continue
                before_used = (total - added).in_threshold_units(service)
                used = total.in_threshold_units(service)
                for level in crossed(threshold, sim.warning_percent, before_used, used):
                    result.crossings.append(
                        Crossing(sim, service, period, start, level, threshold, used)
                    )
    result.crossings = _first_time(conn, result.crossings, now)
    _record_events(conn, result.crossings, now)
    return result


def sim_key(record: UsageRecord) -> tuple[str, str]:
    """How the record names its SIM: ("iccid", …) or ("imsi", …)."""
    return ("iccid", record.iccid) if record.iccid else ("imsi", record.imsi or "")


def unknown_sims(conn: Connection, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of the SIMs named (as ``sim_key`` names them) do not exist."""
    wanted: dict[str, list[str]] = {"iccid": [], "imsi": []}
    for kind, value in keys:
        wanted[kind].append(value)
    missing = set(keys)
    for kind, values in wanted.items():
        column = sim_cards.c[kind]
        for start in range(0, len(values), LOOKUP_CHUNK):
            chunk = values[start : start + LOOKUP_CHUNK]
            found = conn.execute(select(column).where(column.in_(chunk))).scalars()
            missing -= {(kind, value) for value in found}
    return missing


_SIM_COLUMNS = (
    sim_cards.c.id,
    sim_cards.c.account_id,
    sim_cards.c.iccid,
    sim_cards.c.imsi,
    sim_cards.c.msisdn,
    sim_cards.c.state,
    sim_cards.c.labels,
    sim_cards.c.profile,
    accounts.c.time_zone,
    accounts.c.usage_warning_percent,
)
_SIMS_BY = {
    name: select(*_SIM_COLUMNS)
    .select_from(sim_cards.join(accounts))
    .where(sim_cards.c[name].in_(bindparam("values", expanding=True)))
    for name in ("iccid", "imsi")
}


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _usage_sim(row: Any) -> UsageSim:
    return UsageSim(
        id=row.id,
        account_id=row.account_id,
        iccid=row.iccid,
        imsi=row.imsi,
        msisdn=row.msisdn,
        state=row.state,
        labels=dict(row.labels or {}),
        thresholds=thresholds_of(row.profile or {}),
        zone=_zone(row.time_zone),
        warning_percent=row.usage_warning_percent,
    )


_ACCOUNT_SIM = (
    select(*_SIM_COLUMNS)
    .select_from(sim_cards.join(accounts))
    .where(
        sim_cards.c.account_id == bindparam("account_id"),
        sim_cards.c.iccid == bindparam("iccid"),
    )
)


def find_sim(conn: Connection, account_id: int, iccid: str) -> UsageSim | None:
    """The account's SIM ``iccid`` with what its usage is judged by, or None."""
    row = conn.execute(_ACCOUNT_SIM, {"account_id": account_id, "iccid": iccid}).one_or_none()
    return _usage_sim(row) if row is not None else None


def _sims_of(conn: Connection, records: Iterable[UsageRecord]) -> dict[tuple[str, str], UsageSim]:
    wanted: dict[str, set[str]] = {"iccid": set(), "imsi": set()}
    for record in records:
        kind, value = sim_key(record)
        wanted[kind].add(value)
    found: dict[tuple[str, str], UsageSim] = {}
    for kind, values in wanted.items():
        ordered = sorted(values)
        for start in range(0, len(ordered), LOOKUP_CHUNK):
            chunk = ordered[start : start + LOOKUP_CHUNK]
            for row in conn.execute(_SIMS_BY[kind], {"values": chunk}):
                found[(kind, row.iccid if kind == "iccid" else row.imsi)] = _usage_sim(row)
    return found


def _dialect_insert(conn: Connection, table: Table) -> Any:
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table)


def _claim_batch(conn: Connection, batch_id: str, records: int, now: datetime) -> bool:
    statement = (
        _dialect_insert(conn, usage_batches)
        .values(batch_id=batch_id, records=records, received_at=now)
        .on_conflict_do_nothing(index_elements=["batch_id"])
        .returning(usage_batches.c.batch_id)
    )
    # RETURNING, not rowcount: psycopg reported no row for an INSERT … ON CONFLICT DO NOTHING.
    return conn.execute(statement).first() is not None


def _counters(totals: Totals) -> dict[str, int]:
    return {name: getattr(totals, name) for name in COUNTERS}


def _add(
    conn: Connection,
    table: Table,
    key: str,
    rows: list[dict[str, Any]],
    extra: tuple[str, ...] = (),
) -> None:
    """Add ``rows``' counters to the aggregates (rows that do not exist yet are inserted)."""
    if not rows:
        return
    statement = _dialect_insert(conn, table)
    statement = statement.on_conflict_do_update(
        index_elements=["sim_id", key],
        set_={name: table.c[name] + statement.excluded[name] for name in (*COUNTERS, *extra)},
    )
    conn.execute(statement, rows)


def _totals(
    conn: Connection, table: Table, key: str, parts: dict[tuple[int, date], Totals]
) -> dict[tuple[int, date], Totals]:
    """The aggregates' totals of the (SIM, period start) pairs ``parts`` names."""
    found: dict[tuple[int, date], Totals] = {}
    pairs = sorted(parts)
    for start in range(0, len(pairs), LOOKUP_CHUNK):
        chunk = pairs[start : start + LOOKUP_CHUNK]
        query = select(table.c.sim_id, table.c[key], *(table.c[n] for n in COUNTERS)).where(
            tuple_(table.c.sim_id, table.c[key]).in_(chunk)
        )
        for row in conn.execute(query):
            found[(row[0], row[1])] = Totals(*row[2:])
    return found


def _first_time(conn: Connection, crossings: list[Crossing], now: datetime) -> list[Crossing]:
    """The crossings not reported before (each claims its alert row; rare: one statement each)."""
    first = []
    for c in crossings:
        statement = (
            _dialect_insert(conn, usage_alerts)
            .values(
                sim_id=c.sim.id,
                service=c.service.value,
                period=c.period.value,
                period_start=c.period_start,
                level=c.level.value,
                account_id=c.sim.account_id,
                reached_at=now,
            )
            .on_conflict_do_nothing()
            .returning(usage_alerts.c.sim_id)
        )
        if conn.execute(statement).first() is not None:
            first.append(c)
    return first


_EVENT_TYPES = {
    Level.WARNING: EventType.USAGE_THRESHOLD_REACHED,
    Level.LIMIT: EventType.USAGE_LIMIT_EXCEEDED,
}


def _record_events(conn: Connection, crossings: Sequence[Crossing], now: datetime) -> None:
    event_store.record(
        conn,
        [
            event_store.NewEvent(
                account_id=c.sim.account_id,
                type=_EVENT_TYPES[c.level].value,
                version=version_of(_EVENT_TYPES[c.level]),
                occurred_at=now,
                sim_id=c.sim.id,
                sim=event_store.sim_snapshot(c.sim.iccid, c.sim.msisdn, c.sim.labels),
                data=usage_data(
                    c.service,
                    c.period,
                    c.period_start,
                    c.threshold,
                    c.used,
                    c.sim.warning_percent,
                    limit=c.level is Level.LIMIT,
                ),
            )
            for c in crossings
        ],
    )


# --- reading ------------------------------------------------------------------------------------

_GRANULARITIES = {"hour": (usage_hourly, "hour"), "day": (usage_daily, "day")}
_GRANULARITIES["month"] = (usage_monthly, "month")


@dataclass(frozen=True, slots=True)
class UsageRow:
    start: datetime | date
    totals: Totals


def sim_usage(
    conn: Connection,
    sim_id: int,
    granularity: str,
    start: datetime | date,
    end: datetime | date,
) -> Iterator[UsageRow]:
    """One SIM's aggregates of ``granularity`` (hour, day, month) from ``start`` (included) to
    ``end`` (excluded), in time order: an index range of the aggregate's primary key."""
    table, key = _GRANULARITIES[granularity]
    query = (
        select(table.c[key], *(table.c[n] for n in COUNTERS))
        .where(and_(table.c.sim_id == sim_id, table.c[key] >= start, table.c[key] < end))
        .order_by(table.c[key])
    )
    for row in conn.execute(query):
        yield UsageRow(row[0], Totals(*row[1:]))
