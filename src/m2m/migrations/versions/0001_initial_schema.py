"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from m2m.storage.tables import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("subscription", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("is_sandbox", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "subscription IN ('active', 'suspended')", name=op.f("ck_accounts_subscription")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("key_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_api_keys_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_digest", name=op.f("uq_api_keys_key_digest")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index("ix_api_keys_account_id", ["account_id"], unique=False)

    op.create_table(
        "oauth_apps",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("secret_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_oauth_apps_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_apps")),
        sa.UniqueConstraint("client_id", name=op.f("uq_oauth_apps_client_id")),
    )
    with op.batch_alter_table("oauth_apps", schema=None) as batch_op:
        batch_op.create_index("ix_oauth_apps_account_id", ["account_id"], unique=False)

    op.create_table(
        "sim_cards",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("iccid", sa.String(length=20), nullable=False),
        sa.Column("imsi", sa.String(length=15), nullable=False),
        sa.Column("msisdn", sa.String(length=15), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("cost_center", sa.String(length=200), nullable=True),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "state IN ('Ready', 'Active', 'Deactivated', 'Terminated')",
            name=op.f("ck_sim_cards_state"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_sim_cards_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sim_cards")),
        sa.UniqueConstraint("iccid", name=op.f("uq_sim_cards_iccid")),
        sa.UniqueConstraint("imsi", name=op.f("uq_sim_cards_imsi")),
        sa.UniqueConstraint("msisdn", name=op.f("uq_sim_cards_msisdn")),
    )
    with op.batch_alter_table("sim_cards", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sim_cards_account_id_state", ["account_id", "state"], unique=False
        )

    op.create_table(
        "access_tokens",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("app_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("token_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "(app_id IS NOT NULL AND salt IS NOT NULL AND expires_at IS NOT NULL AND name IS NULL) OR (app_id IS NULL AND salt IS NULL AND expires_at IS NULL AND name IS NOT NULL)",
            name=op.f("ck_access_tokens_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_access_tokens_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["oauth_apps.id"],
            name=op.f("fk_access_tokens_app_id_oauth_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_tokens")),
        sa.UniqueConstraint("app_id", name=op.f("uq_access_tokens_app_id")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_access_tokens_token_digest")),
    )
    with op.batch_alter_table("access_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_access_tokens_account_id", ["account_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("access_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_access_tokens_account_id")

    op.drop_table("access_tokens")
    with op.batch_alter_table("sim_cards", schema=None) as batch_op:
        batch_op.drop_index("ix_sim_cards_account_id_state")

    op.drop_table("sim_cards")
    with op.batch_alter_table("oauth_apps", schema=None) as batch_op:
        batch_op.drop_index("ix_oauth_apps_account_id")

    op.drop_table("oauth_apps")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_account_id")

    op.drop_table("api_keys")
    op.drop_table("accounts")
