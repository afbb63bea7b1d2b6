"""usage (issue 15): hourly, daily and monthly aggregates, threshold crossings, counted batches,
the operator's ingestion tokens, and the account's time zone, warning percentage and policy

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from m2m.migrations.columns import add_checked_columns, drop_checked_columns
from m2m.storage.tables import Id, UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = ("data_up_bytes", "data_down_bytes", "sms_out", "sms_in", "voice_seconds")


def _counters() -> list[sa.Column[int]]:
    return [
        sa.Column(name, sa.BigInteger(), server_default="0", nullable=False) for name in COUNTERS
    ]


def _sim(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["sim_id"], ["sim_cards.id"], name=op.f(f"fk_{table}_sim_id_sim_cards"), ondelete="CASCADE"
    )


def _owners(table: str) -> list[sa.ForeignKeyConstraint]:
    return [
        _sim(table),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f(f"fk_{table}_account_id_accounts"),
            ondelete="CASCADE",
        ),
    ]


# The account's new columns, each with its check, added in place (see ``m2m.migrations.columns``).
_ACCOUNT_COLUMNS = (
    ("time_zone", "VARCHAR(64) NOT NULL DEFAULT 'UTC'", None),
    (
        "usage_warning_percent",
        "INTEGER NOT NULL DEFAULT 80",
        "usage_warning_percent BETWEEN 1 AND 100",
    ),
    (
        "usage_policy",
        "VARCHAR(16) NOT NULL DEFAULT 'notify'",
        "usage_policy IN ('notify', 'deactivate')",
    ),
)


def upgrade() -> None:
    add_checked_columns("accounts", _ACCOUNT_COLUMNS)
    op.create_table(
        "usage_hourly",
        sa.Column("sim_id", Id, nullable=False),
        sa.Column("hour", UTCDateTime(), nullable=False),
        *_counters(),
        sa.Column("records", sa.Integer(), server_default="0", nullable=False),
        sa.Column("inactive_records", sa.Integer(), server_default="0", nullable=False),
        _sim("usage_hourly"),
        sa.PrimaryKeyConstraint("sim_id", "hour", name=op.f("pk_usage_hourly")),
        sqlite_with_rowid=False,  # the aggregates' primary key is the table (storage.tables)
    )
    op.create_table(
        "usage_daily",
        sa.Column("sim_id", Id, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("account_id", Id, nullable=False),
        *_counters(),
        *_owners("usage_daily"),
        sa.PrimaryKeyConstraint("sim_id", "day", name=op.f("pk_usage_daily")),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_usage_daily_account_id_day", "usage_daily", ["account_id", "day"], unique=False
    )
    op.create_table(
        "usage_monthly",
        sa.Column("sim_id", Id, nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("account_id", Id, nullable=False),
        *_counters(),
        *_owners("usage_monthly"),
        sa.PrimaryKeyConstraint("sim_id", "month", name=op.f("pk_usage_monthly")),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_usage_monthly_account_id_month",
        "usage_monthly",
        ["account_id", "month"],
        unique=False,
    )
    op.create_table(
        "usage_alerts",
        sa.Column("sim_id", Id, nullable=False),
        sa.Column("service", sa.String(length=8), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("reached_at", UTCDateTime(), nullable=False),
        *_owners("usage_alerts"),
        sa.PrimaryKeyConstraint(
            "sim_id", "service", "period", "period_start", "level", name=op.f("pk_usage_alerts")
        ),
    )
    op.create_table(
        "operator_tokens",
        sa.Column("id", Id, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_tokens")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_operator_tokens_token_digest")),
    )
    op.create_table(
        "usage_batches",
        sa.Column("batch_id", sa.String(length=100), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_usage_batches")),
    )


def downgrade() -> None:
    op.drop_table("usage_batches")
    op.drop_table("operator_tokens")
    op.drop_table("usage_alerts")
    op.drop_index("ix_usage_monthly_account_id_month", table_name="usage_monthly")
    op.drop_table("usage_monthly")
    op.drop_index("ix_usage_daily_account_id_day", table_name="usage_daily")
    op.drop_table("usage_daily")
    op.drop_table("usage_hourly")
    drop_checked_columns("accounts", _ACCOUNT_COLUMNS)
