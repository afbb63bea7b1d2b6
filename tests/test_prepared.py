"""PreparedRead: one-statement reads on a pooled driver connection (the API's hot path)."""

from __future__ import annotations

from sqlalchemy import Engine, String, bindparam, select, text

from m2m.clock import ManualClock
from m2m.profile import stored_profile
from m2m.storage.engine import single_statement_reads, write_transaction
from m2m.storage.prepared import PreparedRead
from m2m.storage.sims import insert_sims
from m2m.storage.tables import accounts, sim_cards

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
