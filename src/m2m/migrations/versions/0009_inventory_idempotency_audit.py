"""the SIM inventory over the API: labels, a row version, the filter and delta-sync indexes;
idempotency keys; the audit trail

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from m2m.storage.tables import Id, UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sim_cards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("labels", sa.JSON(), server_default="{}", nullable=False))
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    op.create_index(
        "ix_sim_cards_account_id_cost_center_id",
        "sim_cards",
        ["account_id", "cost_center", "id"],
        unique=False,
    )
    op.create_index(
        "ix_sim_cards_account_id_updated_at_id",
        "sim_cards",
        ["account_id", "updated_at", "id"],
        unique=False,
    )
    op.create_table(
        "sim_labels",
        sa.Column("sim_id", Id, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_sim_labels_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sim_id"],
            ["sim_cards.id"],
            name=op.f("fk_sim_labels_sim_id_sim_cards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sim_id", "key", name=op.f("pk_sim_labels")),
    )
    op.create_index(
        "ix_sim_labels_account_id_key_value_sim_id",
        "sim_labels",
        ["account_id", "key", "value", "sim_id"],
        unique=False,
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", Id, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_headers", sa.JSON(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_idempotency_keys_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        "ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"], unique=False
    )
    op.create_table(
        "audit_events",
        sa.Column("id", Id, nullable=False),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_audit_events_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(
        "ix_audit_events_account_id_id", "audit_events", ["account_id", "id"], unique=False
    )
    op.create_index(
        "ix_audit_events_account_id_subject_id",
        "audit_events",
        ["account_id", "subject", "id"],
        unique=False,
    )
    op.create_index("ix_audit_events_occurred_at", "audit_events", ["occurred_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_events_occurred_at", table_name="audit_events")
    op.drop_index("ix_audit_events_account_id_subject_id", table_name="audit_events")
    op.drop_index("ix_audit_events_account_id_id", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_sim_labels_account_id_key_value_sim_id", table_name="sim_labels")
    op.drop_table("sim_labels")
    op.drop_index("ix_sim_cards_account_id_updated_at_id", table_name="sim_cards")
    op.drop_index("ix_sim_cards_account_id_cost_center_id", table_name="sim_cards")
    with op.batch_alter_table("sim_cards", schema=None) as batch_op:
        batch_op.drop_column("version")
        batch_op.drop_column("labels")
