"""The SIM inventory: lookups and bulk import."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)

from m2m.profile import stored_profile
from m2m.storage import accounts
from m2m.storage.prepared import PreparedRead
from m2m.storage.tables import Id, UTCDateTime, sim_cards


@dataclass(frozen=True, slots=True)
class StoredSim:
    iccid: str
    imsi: str
    msisdn: str
    state: str
    cost_center: str | None
    profile: dict[str, Any]


# Built once (see the hot path in ``storage.accounts``).
_SIM_COLUMNS = (
    sim_cards.c.iccid,
    sim_cards.c.imsi,
    sim_cards.c.msisdn,
    sim_cards.c.state,
    sim_cards.c.cost_center,
    sim_cards.c.profile,
)
# The caller's credentials and, in the same row, the SIM, if it belongs to the account of the
# token *and* to that of the API key: the SIM columns are NULL for anyone else's SIM.
_caller_and_sim = PreparedRead(
    select(*accounts.CALLER_COLUMNS, *_SIM_COLUMNS).select_from(
        accounts.CALLER_ACCOUNTS.outerjoin(
            sim_cards,
            and_(
                sim_cards.c.msisdn == bindparam("msisdn", type_=String),
                sim_cards.c.account_id == accounts.CALLER_TOKEN_ACCOUNT,
                sim_cards.c.account_id == accounts.CALLER_KEY_ACCOUNT,
            ),
        )
    )
)


def _stored_sim(row: Sequence[Any]) -> StoredSim:
    iccid, imsi, msisdn, state, cost_center, profile = row
    return StoredSim(iccid, imsi, msisdn, state, cost_center, profile)


def find_sim_for_caller(
    engine: Engine, token_digest: bytes, key_digest: bytes, now: datetime, msisdn: str
) -> tuple[accounts.Credentials, StoredSim | None]:
    """What a bearer token and an API key resolve to and, when both belong to the account that
    has it, the SIM with this MSISDN: the credential check and the lookup in one statement, run
    as a ``PreparedRead`` (the API's hot path)."""
    params = {**accounts.credential_params(token_digest, key_digest, now), "msisdn": msisdn}
    row = _caller_and_sim.one_or_none(engine, params)
    assert row is not None  # the statement selects from a one-row subquery
    found = accounts.credentials_of(row)
    sim = row[len(accounts.CALLER_COLUMNS) :]
    return found, (_stored_sim(sim) if sim[0] is not None else None)


def count_sims(conn: Connection, account_id: int | None = None) -> int:
    query = select(func.count()).select_from(sim_cards)
    if account_id is not None:
        query = query.where(sim_cards.c.account_id == account_id)
    return int(conn.execute(query).scalar_one())


def set_state_by_msisdn(
    conn: Connection, account_id: int, msisdn: str, state: str, now: datetime
) -> bool:
    """Put a SIM in ``state`` as seeded data (a sandbox scenario), not as a lifecycle change:
    no history, no event. False if the account has no such SIM."""
    result = conn.execute(
        update(sim_cards)
        .where(sim_cards.c.account_id == account_id, sim_cards.c.msisdn == msisdn)
        .values(state=state, updated_at=now)
    )
    return bool(result.rowcount)


def insert_sims(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many SIM rows (keys: the ``sim_cards`` columns) in one statement. Each profile
    is stored as ``stored_profile`` makes it, as every writer stores one."""
    if rows:
        stored = [{**row, "profile": stored_profile(row["profile"])} for row in rows]
        conn.execute(insert(sim_cards), stored)


# --- bulk import through a staging table ----------------------------------------------------
# Rows are first copied into a temporary table, so duplicates inside the file and against the
# inventory are found by the database with indexes, whatever the file's size, in little memory.

_staging_metadata = MetaData()
staging = Table(
    "sim_import_staging",
    _staging_metadata,
    Column("line", Integer, primary_key=True),
    Column("iccid", String(20), nullable=False),
    Column("imsi", String(15), nullable=False),
    Column("msisdn", String(15), nullable=False),
    Column("state", String(16), nullable=False),
    Column("cost_center", String(200)),
    # JSON text as the importer serialised it: staged and copied without a Python round trip.
    Column("profile", Text, nullable=False),
    prefixes=["TEMPORARY"],
)


def create_staging(conn: Connection) -> None:
    staging.drop(conn, checkfirst=True)
    staging.create(conn)
    for column in ("iccid", "imsi", "msisdn"):
        conn.execute(text(f"CREATE INDEX ix_staging_{column} ON sim_import_staging ({column})"))


def stage_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(staging), rows)


def staged_duplicates(conn: Connection) -> Iterable[tuple[int, str]]:
    """(line, problem) for each staged row that repeats an earlier line or a stored SIM."""
    for column in ("iccid", "imsi", "msisdn"):
        staged = staging.c[column]
        # The first line of each repeated value, then every later line with it: a grouping and a
        # join, whose cost does not grow with how often a value repeats. The EXISTS ("an earlier
        # line has it") this replaced became a hash semi-join on PostgreSQL, quadratic in the
        # repeats: 200,000 rows with one ICCID took 12 minutes to import.
        firsts = (
            select(staged.label("value"), func.min(staging.c.line).label("first_line"))
            .group_by(staged)
            .having(func.count() > 1)
            .subquery("firsts")
        )
        in_file = (
            select(staging.c.line, staged, firsts.c.first_line)
            .join_from(staging, firsts, firsts.c.value == staged)
            .where(staging.c.line > firsts.c.first_line)
        )
        for line, value, first_line in conn.execute(in_file):
            problem = (
                f"duplicate {column.upper()} {value} (already in this file, line {first_line})"
            )
            yield line, problem
        in_db = select(staging.c.line, staged).where(
            select(sim_cards.c.id).where(sim_cards.c[column] == staged).exists()
        )
        for line, value in conn.execute(in_db):
            yield line, f"{column.upper()} {value} already exists"


def discard_staged(conn: Connection, lines: Sequence[int]) -> None:
    for start in range(0, len(lines), 500):
        chunk = lines[start : start + 500]
        conn.execute(delete(staging).where(staging.c.line.in_(chunk)))


def _as_stored_json(conn: Connection, json_text: ColumnElement[str]) -> ColumnElement[Any]:
    # PostgreSQL's json column takes text only through a cast. SQLite keeps JSON as text, and its
    # CAST(… AS JSON) would apply numeric affinity, so there the text goes in as it is.
    if conn.dialect.name == "postgresql":
        return cast(json_text, JSON)
    return json_text


def insert_staged(conn: Connection, account_id: int, now: datetime) -> int:
    """Move the staged rows into the inventory; returns how many."""
    source = select(
        literal(account_id, Id),
        staging.c.iccid,
        staging.c.imsi,
        staging.c.msisdn,
        staging.c.state,
        staging.c.cost_center,
        _as_stored_json(conn, staging.c.profile),
        literal(now, UTCDateTime),
        literal(now, UTCDateTime),
    ).order_by(staging.c.line)
    columns = [
        "account_id",
        "iccid",
        "imsi",
        "msisdn",
        "state",
        "cost_center",
        "profile",
        "created_at",
        "updated_at",
    ]
    conn.execute(insert(sim_cards).from_select(columns, source))
    # Counted, not rowcount: drivers differ on INSERT … SELECT (psycopg reports -1).
    return int(conn.execute(select(func.count()).select_from(staging)).scalar_one())


def drop_staging(conn: Connection) -> None:
    staging.drop(conn, checkfirst=True)
