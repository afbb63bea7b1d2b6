"""usage reactivation (issue 15): the account's choice to have the SIMs its usage policy
deactivated reactivated when the period ends, and a row per deactivation the policy made

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from m2m.migrations.columns import add_checked_columns, drop_checked_columns
from m2m.storage.tables import Id, UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Added in place, never through a batch rebuild of accounts (see ``m2m.migrations.columns``).
_ACCOUNT_COLUMNS = (("usage_reactivate", "BOOLEAN NOT NULL DEFAULT false", None),)
_OPEN = "closed_at IS NULL"


def upgrade() -> None:
    add_checked_columns("accounts", _ACCOUNT_COLUMNS)
    op.create_table(
        "usage_deactivations",
        sa.Column("id", Id, nullable=False),
        sa.Column("sim_id", Id, nullable=False),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_ends_at", UTCDateTime(), nullable=False),
        sa.Column("deactivation_tracking_number", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("reactivation_tracking_number", sa.String(length=36), nullable=True),
        sa.CheckConstraint(
            "period IN ('daily', 'monthly')", name=op.f("ck_usage_deactivations_period")
        ),
        sa.ForeignKeyConstraint(
            ["sim_id"],
            ["sim_cards.id"],
            name=op.f("fk_usage_deactivations_sim_id_sim_cards"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_usage_deactivations_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_deactivations")),
    )
    op.create_index(
        "ix_usage_deactivations_open_period_ends_at",
        "usage_deactivations",
        ["period_ends_at"],
        unique=False,
        sqlite_where=sa.text(_OPEN),
        postgresql_where=sa.text(_OPEN),
    )
    op.create_index(
        "ix_usage_deactivations_sim_id_period_ends_at",
        "usage_deactivations",
        ["sim_id", "period_ends_at"],
        unique=False,
    )
    op.create_index(
        "ix_usage_deactivations_account_id", "usage_deactivations", ["account_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_usage_deactivations_account_id", table_name="usage_deactivations")
    op.drop_index("ix_usage_deactivations_sim_id_period_ends_at", table_name="usage_deactivations")
    op.drop_index("ix_usage_deactivations_open_period_ends_at", table_name="usage_deactivations")
    op.drop_table("usage_deactivations")
    drop_checked_columns("accounts", _ACCOUNT_COLUMNS)
