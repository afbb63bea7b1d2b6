"""The schema, as SQLAlchemy Core tables. Alembic migrations must produce exactly this.

Timestamps are ``*_at`` columns holding aware UTC datetimes (see ``UTCDateTime``). Secrets are
stored only as SHA-256 digests (``*_digest``). A SIM's documented profile (access points, custom
fields, data/SMS/voice services) is one JSON document in the wire's own shape: it is always read
and written whole, and one row read keeps the hot lookup at a single query.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    TypeDecorator,
    false,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# SQLite auto-increments only an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite has no time zones: keep naive UTC so values compare as text in order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("subscription", String(16), nullable=False, server_default="active"),
    Column("is_sandbox", Boolean, nullable=False, server_default=false()),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("subscription IN ('active', 'suspended')", name="subscription"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("key_digest", LargeBinary(32), nullable=False, unique=True),
    Column("hint", String(16), nullable=False),  # first characters, to tell keys apart in lists
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Index("ix_api_keys_account_id", "account_id"),
)

oauth_apps = Table(
    "oauth_apps",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("client_id", String(100), nullable=False, unique=True),
    Column("secret_digest", LargeBinary(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_oauth_apps_account_id", "account_id"),
)

# Temporary tokens have an app and an expiry; permanent ones have a name and neither.
# UNIQUE(app_id) is the "single active token" rule: an app's previous token row is deleted when a
# new one is issued (after expiry or revocation), so two concurrent issuers cannot both win.
access_tokens = Table(
    "access_tokens",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column(
        "app_id", Id, ForeignKey("oauth_apps.id", ondelete="CASCADE"), nullable=True, unique=True
    ),
    Column("name", String(200), nullable=True),
    Column("token_digest", LargeBinary(32), nullable=False, unique=True),
    Column("salt", LargeBinary(32), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Index("ix_access_tokens_account_id", "account_id"),
    CheckConstraint(
        "(app_id IS NOT NULL AND salt IS NOT NULL AND expires_at IS NOT NULL AND name IS NULL)"
        " OR (app_id IS NULL AND salt IS NULL AND expires_at IS NULL AND name IS NOT NULL)",
        name="kind",
    ),
)

sim_cards = Table(
    "sim_cards",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("iccid", String(20), nullable=False, unique=True),
    Column("imsi", String(15), nullable=False, unique=True),
    Column("msisdn", String(15), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("cost_center", String(200), nullable=True),
    Column("profile", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_sim_cards_account_id_state", "account_id", "state"),
    CheckConstraint("state IN ('Ready', 'Active', 'Deactivated', 'Terminated')", name="state"),
)
