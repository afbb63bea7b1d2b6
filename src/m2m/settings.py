"""One settings object, read from ``M2M_*`` environment variables and validated at start-up.

Nothing reads the environment at import time: ``Settings()`` is built by the CLI (or a test) and
passed to ``create_app`` and the storage layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Public on purpose: the sandbox is a documented, throw-away environment.
SANDBOX_SECRET_KEY = "sandbox-secret-key-do-not-use-in-production"  # noqa: S105
MIN_SECRET_KEY_LENGTH = 32


class ConfigurationError(Exception):
    """The settings cannot be used as they are; the message says what to change."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="M2M_", extra="ignore")

    sandbox: bool = False
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: a SQLite file m2m.db in data_dir.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Server secret (at least 32 characters); required outside sandbox mode.",
    )
    token_ttl_seconds: int = Field(default=3600, ge=60, le=86400 * 365)

    # Brute-force protection: failures allowed per key (client_id, source address) in a window.
    auth_max_failures: int = Field(default=10, ge=1)
    auth_failure_window_seconds: int = Field(default=60, ge=1)

    behind_tls_proxy: bool = Field(
        default=False,
        description="Trust X-Forwarded-Proto/For from forwarded_allow_ips (a TLS proxy).",
    )
    forwarded_allow_ips: str = "127.0.0.1"

    @model_validator(mode="after")
    def _fill_defaults(self) -> Self:
        if self.secret_key is None and self.sandbox:
            self.secret_key = SecretStr(SANDBOX_SECRET_KEY)
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'm2m.db').as_posix()}"

    def check_for_production(self) -> None:
        """Refuse settings that are only acceptable in the sandbox."""
        if self.sandbox:
            return
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if not key:
            raise ConfigurationError(
                "M2M_SECRET_KEY is not set. Outside sandbox mode the server needs its own secret "
                f"(at least {MIN_SECRET_KEY_LENGTH} characters), for example the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        if key == SANDBOX_SECRET_KEY:
            raise ConfigurationError(
                "M2M_SECRET_KEY is the public sandbox key; set a secret of your own."
            )
        if len(key) < MIN_SECRET_KEY_LENGTH:
            raise ConfigurationError(
                f"M2M_SECRET_KEY is too short: at least {MIN_SECRET_KEY_LENGTH} characters."
            )
