"""Applying the Alembic migrations that ship inside the package."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, func, select

from m2m.storage.engine import take_write_lock_at_begin

_MIGRATION_LOCK = 0x4D324D_0000  # advisory lock key: "M2M" migrations
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


@dataclass(frozen=True, slots=True)
class Migration:
    """The schema revision a database was at before ``upgrade``, and is at after it."""

    before: str | None  # None: an empty database
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def upgrade(engine: Engine, revision: str = "head") -> Migration:
    """Migrate; safe when several processes (API, workers) start on one database at once:
    the first takes the lock and migrates, the others wait, then find nothing to do."""
    config = alembic_config(engine)
    with engine.connect() as connection:
        take_write_lock_at_begin(connection)  # SQLite: BEGIN IMMEDIATE
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            # Read under the lock: another process may have migrated while this one waited.
            before = _current_revision(connection)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            return Migration(before, _current_revision(connection))


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@functools.cache
def head_revision() -> str | None:
    """The revision this code's schema is at (the newest migration shipped)."""
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: not migrated at all). Raises when the database
    cannot be reached."""
    with engine.connect() as connection:
        return _current_revision(connection)
