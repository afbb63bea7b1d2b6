from __future__ import annotations

import pytest
import sqlalchemy.exc
from pydantic import ValidationError
from sqlalchemy.pool import QueuePool

from m2m.settings import SANDBOX_SECRET_KEY, ConfigurationError, Settings


def test_sandbox_gets_the_public_key() -> None:
    settings = Settings(sandbox=True)
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == SANDBOX_SECRET_KEY
    settings.check_for_production()  # no complaint in the sandbox


@pytest.mark.parametrize(
    ("key", "complaint"),
    [(None, "not set"), (SANDBOX_SECRET_KEY, "sandbox"), ("short", "too short")],
)
def test_production_refuses_missing_default_or_weak_secret(key: str | None, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        Settings(sandbox=False, secret_key=key).check_for_production()


def test_settings_come_from_m2m_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("M2M_DATABASE_URL", "sqlite:////tmp/x.db")
    monkeypatch.setenv("M2M_TOKEN_TTL_SECONDS", "120")
    settings = Settings()
    assert settings.effective_database_url == "sqlite:////tmp/x.db"
    assert settings.token_ttl_seconds == 120


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////srv/m2m/m2m.db",
        "sqlite:///relative/m2m.db",
        "sqlite+pysqlite:///m2m.db",
        "postgresql://m2m:pw@db.internal:5432/m2m",
        "postgresql+psycopg://m2m@db.internal/m2m",
    ],
)
def test_sqlite_and_postgresql_urls_are_accepted(url: str) -> None:
    assert Settings(database_url=url).effective_database_url == url


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("foo", "not a database URL; use sqlite:////"),
        ("postgresql://m2m:pw-s3cret@db:port/m2m", "not a database URL"),
        (
            "mysql://m2m:pw-s3cret@db/m2m",
            "mysql is not supported: m2m runs on SQLite or PostgreSQL",
        ),
        ("postgres://m2m:pw-s3cret@db/m2m", "write postgresql://, not postgres://"),
        ("postgresql+asyncpg://m2m:pw-s3cret@db/m2m", "the driver 'asyncpg' is not supported"),
        ("sqlite+aiosqlite:///m2m.db", "the driver 'aiosqlite' is not supported"),
    ],
)
def test_other_database_urls_are_refused_when_the_settings_are_read(
    url: str, complaint: str
) -> None:
    """Refused at once, saying what works, rather than by a driver import on first use."""
    with pytest.raises(ValidationError) as raised:
        Settings(database_url=url)
    [error] = raised.value.errors()
    assert error["loc"] == ("database_url",)
    assert complaint in error["msg"]
    assert "pw-s3cret" not in error["msg"]


def test_default_database_is_sqlite_in_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("M2M_DATABASE_URL", raising=False)
    monkeypatch.setenv("M2M_DATA_DIR", "/srv/m2m")
    assert Settings().effective_database_url == "sqlite:////srv/m2m/m2m.db"


def test_pool_settings_bound_each_process_connections(database_url: str) -> None:
    """M2M_DATABASE_POOL_SIZE / _MAX_OVERFLOW: the connection budget of one process."""
    settings = Settings(database_url=database_url, database_pool_size=2, database_max_overflow=1)
    engine = settings.make_engine()
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    pool._timeout = 0.2  # wait briefly for a free connection (default: 30 s)
    held = [engine.connect() for _ in range(3)]
    try:
        assert pool.size() == 2
        assert pool.checkedout() == 3
        with pytest.raises(sqlalchemy.exc.TimeoutError):
            engine.connect()
    finally:
        for conn in held:
            conn.close()
        engine.dispose()
