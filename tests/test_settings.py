from __future__ import annotations

import pytest
import sqlalchemy.exc
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
