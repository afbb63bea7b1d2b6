"""failed authentications of every kind in one table; per-account request-rate limits

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from m2m.migrations.columns import add_checked_columns, drop_checked_columns
from m2m.storage.tables import Id, UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_ACCOUNT_COLUMNS = (
    ("rate_limit_per_second", "FLOAT", "rate_limit_per_second > 0"),
    ("rate_limit_burst", "INTEGER", "rate_limit_burst >= 1"),
)


def upgrade() -> None:
    # The console's login failures become one kind among others (the API's failed credentials
    # are counted here too, shared by every process); the failures of the last minutes move over.
    op.create_table(
        "auth_failures",
        sa.Column("id", Id, nullable=False),
        sa.Column("throttle_key", sa.String(length=400), nullable=False),
        sa.Column("failed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_failures")),
    )
    op.create_index(
        "ix_auth_failures_throttle_key_failed_at",
        "auth_failures",
        ["throttle_key", "failed_at"],
        unique=False,
    )
    op.execute(
        "INSERT INTO auth_failures (throttle_key, failed_at) "
        "SELECT 'console:' || throttle_key, failed_at FROM console_login_failures"
    )
    op.drop_index(
        "ix_console_login_failures_throttle_key_failed_at", table_name="console_login_failures"
    )
    op.drop_table("console_login_failures")
    # In place: a batch rebuild of ``accounts`` deleted every SIM, key and token of a SQLite
    # database through ON DELETE CASCADE (see ``m2m.migrations.columns``).
    add_checked_columns("accounts", _ACCOUNT_COLUMNS)


def downgrade() -> None:
    drop_checked_columns("accounts", _ACCOUNT_COLUMNS)
    op.create_table(
        "console_login_failures",
        sa.Column("id", Id, nullable=False),
        sa.Column("throttle_key", sa.String(length=400), nullable=False),
        sa.Column("failed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_login_failures")),
    )
    op.create_index(
        "ix_console_login_failures_throttle_key_failed_at",
        "console_login_failures",
        ["throttle_key", "failed_at"],
        unique=False,
    )
    op.drop_index("ix_auth_failures_throttle_key_failed_at", table_name="auth_failures")
    op.drop_table("auth_failures")
