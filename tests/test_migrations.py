"""The migrations produce exactly the schema the code declares, and the SQLite pragmas hold."""

from __future__ import annotations

import threading
from pathlib import Path

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
