"""Applying the Alembic migrations that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, func, select

from m2m.storage.engine import take_write_lock_at_begin

_MIGRATION_LOCK = 0x4D324D_0000  # advisory lock key: "M2M" migrations
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate; safe when several processes (API, workers) start on one database at once:
    the first takes the lock and migrates, the others wait, then find nothing to do."""
    config = alembic_config(engine)
    with engine.connect() as connection:
        take_write_lock_at_begin(connection)  # SQLite: BEGIN IMMEDIATE
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)


def make_revision(engine: Engine, message: str) -> None:
    """Developer helper: autogenerate a migration from the difference to ``tables.py``."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)
