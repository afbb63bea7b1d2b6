"""PreparedRead: one-statement reads on a pooled driver connection (the API's hot path).
PreparedStatement: statements run on a Connection's own driver cursor, in its transaction (the
keyed SIM update's write path)."""

from __future__ import annotations

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from m2m.clock import ManualClock
from m2m.profile import stored_profile
from m2m.storage.engine import single_statement_reads, write_transaction
from m2m.storage.prepared import NotPreparable, PreparedRead, PreparedStatement, insert_values
from m2m.storage.sims import insert_sims
from m2m.storage.tables import accounts, sim_cards, sim_labels

PROFILE = {"AccessPoints": [{"Code": "apn", "Properties": {"StaticIP": "10.0.0.1"}}]}

by_msisdn = PreparedRead(
    select(sim_cards.c.msisdn, sim_cards.c.profile, sim_cards.c.created_at).where(
        sim_cards.c.msisdn == bindparam("msisdn", type_=String)
    )
)


def add_sim(engine: Engine, clock: ManualClock) -> None:
    now = clock.now()
    with write_transaction(engine) as conn:
        account_id = conn.execute(
            accounts.insert().values(name="a", created_at=now).returning(accounts.c.id)
        ).scalar_one()
        insert_sims(
            conn,
            [
                {
                    "account_id": account_id,
                    "iccid": "8932019999000000001",
                    "imsi": "206019999000001",
                    "msisdn": "32499000001",
                    "state": "Ready",
                    "cost_center": None,
                    "profile": PROFILE,
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )


def test_row_with_the_columns_types_applied(engine: Engine, clock: ManualClock) -> None:
    add_sim(engine, clock)
    reads = single_statement_reads(engine)
    row = by_msisdn.one_or_none(reads, {"msisdn": "32499000001"})
    # The JSON document parsed (as stored: whole) and the aware UTC timestamp, as through a
    # Connection.
    assert row == ("32499000001", stored_profile(PROFILE), clock.now())
    assert by_msisdn.one_or_none(reads, {"msisdn": "32499000002"}) is None


def test_reads_see_commits_at_once(engine: Engine, clock: ManualClock) -> None:
    reads = single_statement_reads(engine)
    assert by_msisdn.one_or_none(reads, {"msisdn": "32499000001"}) is None
    add_sim(engine, clock)
    assert by_msisdn.one_or_none(reads, {"msisdn": "32499000001"}) is not None


def test_a_connection_closed_by_the_server_is_replaced(
    engine: Engine, clock: ManualClock, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        return  # no server to lose the connection
    add_sim(engine, clock)
    reads = single_statement_reads(engine)
    assert by_msisdn.one_or_none(reads, {"msisdn": "32499000001"}) is not None
    # The pooled connection dies (as when PostgreSQL restarts); no pre-ping notices it.
    with engine.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert by_msisdn.one_or_none(reads, {"msisdn": "32499000001"}) is not None


def test_reads_engine_is_disposed_with_its_engine(engine: Engine, database_url: str) -> None:
    reads = single_statement_reads(engine)
    by_msisdn.one_or_none(reads, {"msisdn": "32499000001"})
    engine.dispose()
    if database_url.startswith("postgresql"):
        assert reads is not engine
        assert reads.pool.checkedin() == 0  # type: ignore[attr-defined]


label_insert = PreparedStatement(
    insert_values(sim_labels, ("sim_id", "key", "account_id", "value"))
)
labels_of = PreparedStatement(
    select(sim_labels.c.key, sim_labels.c.value)
    .where(sim_labels.c.sim_id == bindparam("sim_id"))
    .order_by(sim_labels.c.key)
)
# A value written into the statement (not a parameter), and a JSON column's parameter.
profile_reset = PreparedStatement(
    update(sim_cards)
    .where(sim_cards.c.msisdn == bindparam("msisdn", type_=String))
    .values(cost_center=None, profile=bindparam("profile", type_=sim_cards.c.profile.type))
    .returning(sim_cards.c.id, sim_cards.c.cost_center, sim_cards.c.profile)
)


def sim_and_account(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        row = conn.execute(select(sim_cards.c.id, sim_cards.c.account_id)).one()
    return row.id, row.account_id


def test_statements_run_in_the_connection_s_transaction(engine: Engine, clock: ManualClock) -> None:
    add_sim(engine, clock)
    sim_id, account_id = sim_and_account(engine)
    label = {"sim_id": sim_id, "account_id": account_id}
    with write_transaction(engine) as conn:
        label_insert.run_many(
            conn,
            [{**label, "key": "site", "value": "gent"}, {**label, "key": "tier", "value": "1"}],
        )
        label_insert.run_many(conn, [])  # nothing to do, nothing done
        # Seen by the same transaction, through SQLAlchemy and prepared alike.
        assert labels_of.first(conn, {"sim_id": sim_id}) == ("site", "gent")
        assert conn.execute(select(sim_labels.c.key)).scalars().all() == ["site", "tier"]
    with engine.connect() as conn:
        transaction = conn.begin()
        label_insert.run(conn, {**label, "key": "zone", "value": "b"})
        transaction.rollback()  # undone with the transaction
        assert conn.execute(select(sim_labels.c.key)).scalars().all() == ["site", "tier"]


def test_values_written_into_the_statement_and_columns_types_apply(
    engine: Engine, clock: ManualClock
) -> None:
    add_sim(engine, clock)
    sim_id, _ = sim_and_account(engine)
    document = {"AccessPoints": [{"Code": "other"}]}
    with write_transaction(engine) as conn:
        row = profile_reset.first(conn, {"msisdn": "32499000001", "profile": document})
        assert row == (sim_id, None, document)  # RETURNING, the JSON parsed back
        assert profile_reset.first(conn, {"msisdn": "32499000009", "profile": {}}) is None
    with engine.connect() as conn:
        stored = conn.execute(select(sim_cards.c.cost_center, sim_cards.c.profile)).one()
    assert tuple(stored) == (None, document)


def test_a_driver_error_is_sqlalchemy_s_and_the_transaction_rolls_back(
    engine: Engine, clock: ManualClock
) -> None:
    """Callers (and ``engine.is_transient``) tell errors apart by SQLAlchemy's classes."""
    add_sim(engine, clock)
    sim_id, account_id = sim_and_account(engine)
    row = {"sim_id": sim_id, "account_id": account_id, "key": "site", "value": "gent"}

    def the_same_key_twice() -> None:
        with write_transaction(engine) as conn:
            label_insert.run(conn, row)
            label_insert.run(conn, {**row, "value": "again"})

    with pytest.raises(IntegrityError) as raised:
        the_same_key_twice()
    assert "sim_labels" in str(raised.value)
    with engine.connect() as conn:
        assert conn.execute(select(sim_labels.c.key)).scalars().all() == []
    # The connection went back to the pool usable.
    with write_transaction(engine) as conn:
        label_insert.run(conn, row)
    with engine.connect() as conn:
        assert conn.execute(select(sim_labels.c.value)).scalars().all() == ["gent"]


def test_a_connection_without_a_transaction_begins_one(engine: Engine, clock: ManualClock) -> None:
    """As SQLAlchemy's own execute does: what the statement wrote is committed by the
    connection's commit and undone by its rollback, on both databases alike."""
    add_sim(engine, clock)
    sim_id, account_id = sim_and_account(engine)
    label = {"sim_id": sim_id, "account_id": account_id, "value": "v"}
    with engine.connect() as conn:
        label_insert.run(conn, {**label, "key": "kept"})
        assert conn.in_transaction()
        conn.commit()
        label_insert.run(conn, {**label, "key": "dropped"})
        conn.rollback()
    with engine.connect() as conn:
        assert conn.execute(select(sim_labels.c.key)).scalars().all() == ["kept"]


def test_what_sqlalchemy_works_out_at_execution_is_refused(engine: Engine) -> None:
    """A default computed in Python (SQLAlchemy fills it in at each execution) would be sent as
    NULL by a prepared statement: refused at its first use instead."""
    table = Table(
        "defaults",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("name", String(10)),
        Column("kind", String(10), default="plain"),
    )
    statement = PreparedStatement(insert(table).values(name=bindparam("name")))
    with engine.connect() as conn, pytest.raises(NotPreparable, match="default"):
        statement.run(conn, {"name": "x"})
