"""One settings object, read from ``M2M_*`` environment variables and validated at start-up.

Nothing reads the environment at import time: ``Settings()`` is built by the CLI (or a test) and
passed to ``create_app`` and the storage layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Engine

from m2m.storage.engine import database_url_problem, make_engine

# Public on purpose: the sandbox is a documented, throw-away environment.
SANDBOX_SECRET_KEY = "sandbox-secret-key-do-not-use-in-production"  # noqa: S105
MIN_SECRET_KEY_LENGTH = 32
# The defaults below are configuration, so they live here with every other setting; the modules
# that use them (``callbacks.retry``, ``network.Simulator``) are handed the configured value.
# Seconds before each callback retry: 13 attempts in all over about 23.8 hours.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    7200,
    14400,
    28800,
    28800,
)
# One test SIM per demo state in the sandbox: 013 (Active), 066 (Ready), 099 (Deactivated).
SANDBOX_FAILING_MSISDNS = ("32470000013", "32470000066", "32470000099")


class ConfigurationError(Exception):
    """The settings cannot be used as they are; the message says what to change."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="M2M_", extra="ignore")

    sandbox: bool = False
    sandbox_usage: bool = Field(
        default=True,
        description="In sandbox mode, the network simulates the SIMs' usage (every quarter hour "
        "of the sandbox's clock: docs/usage.md), so that usage grows and thresholds are crossed.",
    )
    sandbox_control_from_anywhere: bool = Field(
        default=False,
        description="Serve the sandbox's control API (/sandbox/...: clock, faults, reset) to "
        "callers beyond loopback, e.g. a test suite in another container.",
    )
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: a SQLite file m2m.db in data_dir.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Server secret (at least 32 characters); required outside sandbox mode.",
    )
    database_pool_size: int = Field(
        default=20, ge=1, description="Connections each process keeps open to the database."
    )
    database_max_overflow: int = Field(
        default=20, ge=0, description="Extra connections a process may open under load."
    )
    token_ttl_seconds: int = Field(default=3600, ge=60, le=86400 * 365)

    # Brute-force protection (m2m.failure_budget): only failing attempts are counted and refused.
    auth_max_failures: int = Field(
        default=10,
        ge=1,
        description="Failed attempts allowed per presented credential (client_id, token, API "
        "key) within the window; past it, further failing attempts get 429.",
    )
    auth_address_max_failures: int = Field(
        default=100,
        ge=1,
        description="Failed attempts allowed per source address within the window (an address "
        "may be a whole company behind NAT: valid credentials from it are always served).",
    )
    auth_failure_window_seconds: int = Field(default=60, ge=1)

    # Per-account request-rate limits on the M2M API (m2m.rate_limits), per API process.
    rate_limit_per_second: float = Field(
        default=1000,
        gt=0,
        description="Default requests per second an account may make (its own limit, set with "
        "`m2m admin accounts rate-limit`, wins).",
    )
    rate_limit_burst: int = Field(
        default=2000, ge=1, description="Default burst: requests an idle account may make at once."
    )

    # The web console.
    console_session_hours: float = Field(
        default=12, gt=0, le=24 * 30, description="A console login lasts this long at most."
    )
    console_idle_minutes: float = Field(
        default=60, gt=0, description="A console session unused this long ends."
    )
    console_login_lock_minutes: float = Field(
        default=15, gt=0, description="How long repeated failed console logins lock an email."
    )

    # What one request may be, and what every answer says about transport security.
    max_request_head_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="Request line and headers together; more is answered 431 (a URL over 8 KiB, "
        "414) before the rest is read.",
    )
    hsts_max_age_seconds: int = Field(
        default=365 * 86400,
        ge=0,
        description="Strict-Transport-Security max-age sent over HTTPS outside the sandbox.",
    )

    behind_tls_proxy: bool = Field(
        default=False,
        description="Trust X-Forwarded-Proto/For from forwarded_allow_ips (a TLS proxy).",
    )
    forwarded_allow_ips: str = "127.0.0.1"

    # Operating it: logs and metrics.
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="'text' (readable lines) or 'json' (one object a line, for log shippers).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_enabled: bool = Field(
        default=True,
        description="Count requests and serve /metrics (Prometheus); false: neither.",
    )
    page_read_concurrency: int = Field(
        default=0,
        ge=0,
        description="Pages (SIM list, event log, audit trail) one API process reads at once; "
        "0: 1 on SQLite, 4 on PostgreSQL (m2m.page_reads).",
    )

    # The audit trail.
    audit_retention_days: int = Field(
        default=365,
        ge=1,
        le=36_500,
        description="Days audit events are kept; the purge command deletes older ones.",
    )

    # Lifecycle requests.
    max_devices_per_request: int = Field(default=10_000, ge=1)
    embedded_worker: bool = Field(default=True, description="serve runs one worker in-process.")
    worker_batch_size: int = Field(default=500, ge=1, le=10_000)
    worker_poll_seconds: float = Field(default=0.5, gt=0)
    item_lease_seconds: float = Field(default=60, gt=0)
    network_adapter: str = Field(
        default="simulator", description="'simulator', or 'module:factory' of a real adapter."
    )
    simulator_latency_seconds: float | None = Field(
        default=None, ge=0, description="Mean simulated network latency; default 0.2 s."
    )
    simulator_failure_rate: float = Field(default=0.0, ge=0, le=1)
    simulator_failing_msisdns: list[str] = Field(default=list(SANDBOX_FAILING_MSISDNS))

    # Callback delivery.
    callback_timeout_seconds: float = Field(default=15, gt=0)
    callback_retry_schedule: list[float] = Field(
        default=list(DEFAULT_RETRY_SCHEDULE),
        description="Seconds to wait before each retry (jittered ±20%); then the message fails.",
    )
    callback_connect_timeout_seconds: float = Field(
        default=5,
        gt=0,
        description="Time allowed to connect to a receiver (within the callback timeout).",
    )
    # 96: with the account allowance at three quarters (72), a lone account still has more
    # messages in flight than the 64 it had before allowances existed (fewer made the lifecycle
    # benchmark 12-15% slower), and 24 slots stay free for the others.
    callback_concurrency: int = Field(default=96, ge=1)
    callback_account_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Messages of one account in flight per worker; default: three quarters of "
        "callback_concurrency, so that other accounts always have slots.",
    )
    callback_breaker_failures: int = Field(
        default=5,
        ge=0,
        description="Consecutive unhealthy attempts (timeouts, failed connections, 5xx, 408, "
        "429) that open a callback URL's circuit breaker; 0: never.",
    )
    callback_breaker_max_cooldown_seconds: float = Field(
        default=300,
        gt=0,
        description="An open breaker waits as the retry schedule does (10 s, 30 s, ...), at most "
        "this long, before its probe.",
    )
    signing_rotation_overlap_hours: float = Field(
        default=24,
        ge=0,
        description="After a signing-secret rotation, messages carry the previous secret's "
        "signature too for this long, so receivers can switch secrets without losing any.",
    )
    usage_hourly_retention_days: int = Field(
        default=0,
        ge=0,
        le=36_500,
        description="Days a SIM's hourly usage is kept (0: for as long as the database is); "
        "`m2m admin purge` deletes older hours. Days and months are kept.",
    )
    event_retention_days: int = Field(
        default=30,
        ge=1,
        description="Events older than this are deleted by `m2m admin events purge`; a "
        "consumer's cursor older than that reads on from the oldest event kept.",
    )
    callback_allowed_networks: list[str] = Field(
        default_factory=list,
        description="Private networks callbacks may reach (e.g. 10.1.0.0/16); loopback only in "
        "sandbox mode.",
    )

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, database_url: str | None) -> str | None:
        problem = database_url_problem(database_url) if database_url else None
        if problem:
            raise ValueError(problem)
        return database_url

    @model_validator(mode="after")
    def _fill_defaults(self) -> Self:
        if self.secret_key is None and self.sandbox:
            self.secret_key = SecretStr(SANDBOX_SECRET_KEY)
        return self

    @property
    def effective_simulator_latency(self) -> float:
        return 0.2 if self.simulator_latency_seconds is None else self.simulator_latency_seconds

    @property
    def effective_callback_account_concurrency(self) -> int:
        if self.callback_account_concurrency is not None:
            return min(self.callback_account_concurrency, self.callback_concurrency)
        return max(1, self.callback_concurrency * 3 // 4)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'm2m.db').as_posix()}"

    def make_engine(self) -> Engine:
        return make_engine(
            self.effective_database_url,
            pool_size=self.database_pool_size,
            max_overflow=self.database_max_overflow,
        )

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
