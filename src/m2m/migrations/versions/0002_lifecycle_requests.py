"""lifecycle requests and callbacks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from m2m.storage.tables import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "callback_configs",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("signing_key_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_callback_configs_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_callback_configs")),
    )
    op.create_table(
        "lifecycle_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tracking_number", sa.String(length=36), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("callback_token", sa.String(length=1024), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("accepted_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "operation IN ('activation', 'deactivation', 'reactivation', 'termination')",
            name=op.f("ck_lifecycle_requests_operation"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_lifecycle_requests_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_requests")),
        sa.UniqueConstraint("tracking_number", name=op.f("uq_lifecycle_requests_tracking_number")),
    )
    with op.batch_alter_table("lifecycle_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lifecycle_requests_account_id_accepted_at",
            ["account_id", "accepted_at"],
            unique=False,
        )

    op.create_table(
        "request_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "request_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("identifier", sa.String(length=64), nullable=False),
        sa.Column("identifier_type", sa.String(length=8), nullable=False),
        sa.Column("sim_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("result_status", sa.String(length=16), nullable=True),
        sa.Column("messages", sa.JSON(), nullable=True),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'claimed', 'done')", name=op.f("ck_request_items_status")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["lifecycle_requests.id"],
            name=op.f("fk_request_items_request_id_lifecycle_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sim_id"],
            ["sim_cards.id"],
            name=op.f("fk_request_items_sim_id_sim_cards"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_items")),
    )
    with op.batch_alter_table("request_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_request_items_open",
            ["id"],
            unique=False,
            sqlite_where=sa.text("status != 'done'"),
            postgresql_where=sa.text("status != 'done'"),
        )
        batch_op.create_index("ix_request_items_request_id", ["request_id"], unique=False)
        batch_op.create_index("ix_request_items_sim_id_id", ["sim_id", "id"], unique=False)

    op.create_table(
        "sim_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sim_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("tracking_number", sa.String(length=36), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sim_id"],
            ["sim_cards.id"],
            name=op.f("fk_sim_history_sim_id_sim_cards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sim_history")),
    )
    with op.batch_alter_table("sim_history", schema=None) as batch_op:
        batch_op.create_index("ix_sim_history_sim_id_id", ["sim_id", "id"], unique=False)

    op.create_table(
        "callback_deliveries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("claim_id", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_callback_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_callback_deliveries_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["request_items.id"],
            name=op.f("fk_callback_deliveries_item_id_request_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_deliveries")),
        sa.UniqueConstraint("item_id", name=op.f("uq_callback_deliveries_item_id")),
    )
    with op.batch_alter_table("callback_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_callback_deliveries_account_id_status", ["account_id", "status"], unique=False
        )
        batch_op.create_index(
            "ix_callback_deliveries_due",
            ["next_attempt_at"],
            unique=False,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )

    op.create_table(
        "callback_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("attempted_at", UTCDateTime(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["callback_deliveries.id"],
            name=op.f("fk_callback_attempts_delivery_id_callback_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_attempts")),
    )
    with op.batch_alter_table("callback_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_callback_attempts_delivery_id", ["delivery_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("callback_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_callback_attempts_delivery_id")

    op.drop_table("callback_attempts")
    with op.batch_alter_table("callback_deliveries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_callback_deliveries_due",
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )
        batch_op.drop_index("ix_callback_deliveries_account_id_status")

    op.drop_table("callback_deliveries")
    with op.batch_alter_table("sim_history", schema=None) as batch_op:
        batch_op.drop_index("ix_sim_history_sim_id_id")

    op.drop_table("sim_history")
    with op.batch_alter_table("request_items", schema=None) as batch_op:
        batch_op.drop_index("ix_request_items_sim_id_id")
        batch_op.drop_index("ix_request_items_request_id")
        batch_op.drop_index(
            "ix_request_items_open",
            sqlite_where=sa.text("status != 'done'"),
            postgresql_where=sa.text("status != 'done'"),
        )

    op.drop_table("request_items")
    with op.batch_alter_table("lifecycle_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_lifecycle_requests_account_id_accepted_at")

    op.drop_table("lifecycle_requests")
    op.drop_table("callback_configs")
