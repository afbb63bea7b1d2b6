"""The migrations produce exactly the schema the code declares, and the SQLite pragmas hold."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from m2m.storage.engine import make_engine
from m2m.storage.migrate import Migration, alembic_config, upgrade
from m2m.storage.tables import metadata


def test_migrated_schema_equals_the_models(engine: Engine) -> None:
    """On SQLite and PostgreSQL: the test databases are made by running the migrations."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        assert "sim_cards" in inspect(conn).get_table_names()


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'twice.db'}")
    upgrade(engine)
    upgrade(engine)
    assert "sim_cards" in inspect(engine).get_table_names()
    engine.dispose()


def test_upgrade_says_which_revisions_it_went_from_and_to(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'steps.db'}")
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    assert head != "0002"

    assert upgrade(engine, "0002") == Migration(None, "0002")
    assert upgrade(engine) == Migration("0002", head)
    assert upgrade(engine) == Migration(head, head)
    assert not upgrade(engine).changed
    engine.dispose()


def test_sqlite_is_wal_with_full_sync_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'pragmas.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_concurrent_first_starts_migrate_once(tmp_path: Path) -> None:
    """An API process and workers starting together on a fresh database all come up."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    errors: list[BaseException] = []

    def start() -> None:
        engine = make_engine(url)
        try:
            upgrade(engine)
        except BaseException as error:
            errors.append(error)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_0013_stores_every_profile_whole(tmp_path: Path) -> None:
    """Profiles stored before 0013 (custom fields sparse or in any order) are rewritten whole,
    in the documented order, so that the list can answer the stored text; nothing else moves."""
    engine = make_engine(f"sqlite:///{tmp_path / 'profiles.db'}")
    upgrade(engine, "0010")
    sparse = {"DataService": {"DailyTreshold": 5}, "CustomFields": {"Custom Field 3": "x"}}
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO accounts (id, name, created_at) VALUES (1, 'a', '2026-01-01 00:00:00')"
            )
        )
        for n, profile in enumerate([sparse, {}]):
            conn.execute(
                text(
                    "INSERT INTO sim_cards (account_id, iccid, imsi, msisdn, state, profile,"
                    " created_at, updated_at) VALUES (1, :iccid, :imsi, :msisdn, 'Active',"
                    " :profile, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                ),
                {
                    "iccid": f"893201800000000000{n}",
                    "imsi": f"20601200000000{n}",
                    "msisdn": f"3247000000{n}",
                    "profile": json.dumps(profile),
                },
            )
    upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT profile FROM sim_cards ORDER BY id")).scalars()
        stored = [json.loads(p) for p in rows]
    engine.dispose()
    blanks = {f"Custom Field {n}": "" for n in range(1, 8)}
    keys = ["AccessPoints", "CustomFields", "DataService", "SMSService", "VoiceService"]
    assert [list(p) for p in stored] == [keys, keys]
    assert stored[0]["CustomFields"] == {**blanks, "Custom Field 3": "x"}
    assert list(stored[0]["CustomFields"]) == list(blanks)
    assert stored[0]["DataService"] == {"DailyTreshold": 5}
    assert stored[1] == {
        "AccessPoints": [],
        "CustomFields": blanks,
        "DataService": {},
        "SMSService": {},
        "VoiceService": {},
    }


def test_upgrading_from_before_the_account_columns_keeps_every_sim(tmp_path: Path) -> None:
    """0006 and 0014 add columns to ``accounts``; a rebuild of that table on SQLite had deleted
    everything that refers to an account (ON DELETE CASCADE)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0005")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO accounts (id, name, created_at) VALUES (1, 'a', '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO sim_cards (account_id, iccid, imsi, msisdn, state, profile,"
                " created_at, updated_at) VALUES (1, '8932018000000000000', '206012000000000',"
                " '32470000000', 'Active', '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
    upgrade(engine)
    with engine.connect() as conn:
        sims = conn.execute(text("SELECT count(*) FROM sim_cards")).scalar_one()
        limits = conn.execute(text("SELECT rate_limit_per_second FROM accounts")).scalar_one()
    engine.dispose()
    assert sims == 1
    assert limits is None


def test_0016_fills_each_accounts_days_from_the_usage_counted_before(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0015")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO accounts (id, name, created_at) VALUES "
                "(1, 'a', '2026-01-01 00:00:00'), (2, 'b', '2026-01-01 00:00:00')"
            )
        )
        for n, account in enumerate((1, 1, 2)):
            conn.execute(
                text(
                    "INSERT INTO sim_cards (id, account_id, iccid, imsi, msisdn, state, profile,"
                    " created_at, updated_at) VALUES (:id, :account, :iccid, :imsi, :msisdn,"
                    " 'Active', '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                ),
                {
                    "id": n + 1,
                    "account": account,
                    "iccid": f"893201800000000000{n}",
                    "imsi": f"20601200000000{n}",
                    "msisdn": f"3247000000{n}",
                },
            )
        for sim, account, day, data, sms in [
            (1, 1, "2026-11-30", 100, 1),
            (2, 1, "2026-11-30", 20, 0),
            (1, 1, "2026-12-01", 5, 2),
            (3, 2, "2026-11-30", 7, 0),
        ]:
            conn.execute(
                text(
                    "INSERT INTO usage_daily (sim_id, day, account_id, data_up_bytes, sms_out)"
                    " VALUES (:sim, :day, :account, :data, :sms)"
                ),
                {"sim": sim, "day": day, "account": account, "data": data, "sms": sms},
            )
    upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT account_id, day, data_up_bytes, sms_out FROM usage_account_daily"
                " ORDER BY account_id, day"
            )
        ).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [
        (1, "2026-11-30", 120, 1),
        (1, "2026-12-01", 5, 2),
        (2, "2026-11-30", 7, 0),
    ]


@pytest.mark.parametrize(("target", "dropped"), [("0016", "cause"), ("0011", "http_request_id")])
def test_downgrades_keep_every_request_s_items(tmp_path: Path, target: str, dropped: str) -> None:
    """Dropping a column of ``lifecycle_requests`` on SQLite (``cause`` in 0017,
    ``http_request_id`` in 0012) must not rebuild the table: with foreign keys on, a rebuild's
    DROP TABLE deleted every item of every request (ON DELETE CASCADE)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'down.db'}")
    upgrade(engine)
    at = "'2026-12-01 00:00:00.000000'"
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO accounts (id, name, created_at) VALUES (1, 'a', {at})"))
        conn.execute(
            text(
                "INSERT INTO lifecycle_requests (id, tracking_number, account_id, operation,"
                f" callback_token, item_count, accepted_at) VALUES (1, 't', 1, 'activation',"
                f" 'x', 1, {at})"
            )
        )
        conn.execute(
            text(
                "INSERT INTO request_items (request_id, identifier, identifier_type)"
                " VALUES (1, '32470000001', 'MSISDN')"
            )
        )
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, target)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM request_items")).scalar_one() == 1
        columns = {c["name"] for c in inspect(conn).get_columns("lifecycle_requests")}
    assert dropped not in columns
    engine.dispose()
