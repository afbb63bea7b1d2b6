"""event subscriptions (issue 14): the subscriptions, and their messages in the callback outbox

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

``callback_deliveries`` gains ``subscription_id`` and ``event_id``, and ``item_id`` becomes
nullable (a subscription's message has no item). SQLite cannot alter a column: the table is
rebuilt. It is rebuilt by hand rather than by a batch operation because dropping the old table
with foreign keys on would first delete its rows, and ``callback_attempts``' rows with them
(ON DELETE CASCADE); so the attempts are set aside, and both tables rebuilt, rows kept.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from m2m.storage.tables import Id, UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")
KIND = (
    "(item_id IS NOT NULL AND subscription_id IS NULL AND event_id IS NULL)"
    " OR (item_id IS NULL AND subscription_id IS NOT NULL AND event_id IS NOT NULL)"
)
DELIVERY_COLUMNS = (
    "id, account_id, item_id, payload, status, attempts, next_attempt_at, claim_id, last_error,"
    " created_at, delivered_at"
)
ATTEMPT_COLUMNS = "id, delivery_id, attempted_at, url, status_code, error, latency_ms"
# Built from the constants above, nothing else: no input reaches these statements.
KEEP_ATTEMPTS = f"CREATE TABLE _attempts_kept AS SELECT {ATTEMPT_COLUMNS} FROM callback_attempts"  # noqa: S608
RESTORE_ATTEMPTS = f"INSERT INTO callback_attempts ({ATTEMPT_COLUMNS}) SELECT {ATTEMPT_COLUMNS} FROM _attempts_kept"  # noqa: S608
COPY_DELIVERIES = f"INSERT INTO _deliveries_new ({DELIVERY_COLUMNS}) SELECT {DELIVERY_COLUMNS} FROM callback_deliveries"  # noqa: S608


def upgrade() -> None:
    op.create_table(
        "event_subscriptions",
        sa.Column("id", Id, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("label_filter", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="enabled", nullable=False),
        sa.Column("signing_key_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("signing_key_rotated_at", UTCDateTime(), nullable=True),
        sa.Column("through_event_id", Id, server_default="0", nullable=False),
        sa.Column("breaker_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("breaker_trips", sa.Integer(), server_default="0", nullable=False),
        sa.Column("breaker_open_until", UTCDateTime(), nullable=True),
        sa.Column("breaker_probe_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('enabled', 'paused')", name=op.f("ck_event_subscriptions_status")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_event_subscriptions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_subscriptions")),
        sa.UniqueConstraint("public_id", name=op.f("uq_event_subscriptions_public_id")),
    )
    op.create_index(
        "ix_event_subscriptions_account_id_id", "event_subscriptions", ["account_id", "id"]
    )
    op.create_index(
        "ix_event_subscriptions_status_account_id",
        "event_subscriptions",
        ["status", "account_id"],
    )
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_on_sqlite()
    else:
        op.add_column("callback_deliveries", sa.Column("subscription_id", Id, nullable=True))
        op.add_column("callback_deliveries", sa.Column("event_id", Id, nullable=True))
        op.alter_column("callback_deliveries", "item_id", existing_type=Id, nullable=True)
        op.create_foreign_key(
            op.f("fk_callback_deliveries_subscription_id_event_subscriptions"),
            "callback_deliveries",
            "event_subscriptions",
            ["subscription_id"],
            ["id"],
            ondelete="CASCADE",
        )
        op.create_check_constraint(op.f("ck_callback_deliveries_kind"), "callback_deliveries", KIND)
        _delivery_indexes(subscription_index_only=True)


def _deliveries_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("item_id", Id, nullable=True),
        sa.Column("subscription_id", Id, nullable=True),
        sa.Column("event_id", Id, nullable=True),
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
        sa.CheckConstraint(KIND, name=op.f("ck_callback_deliveries_kind")),
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
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["event_subscriptions.id"],
            name=op.f("fk_callback_deliveries_subscription_id_event_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_deliveries")),
        sa.UniqueConstraint("item_id", name=op.f("uq_callback_deliveries_item_id")),
    )


def _delivery_indexes(*, subscription_index_only: bool = False) -> None:
    op.create_index(
        "ix_callback_deliveries_subscription_id_status",
        "callback_deliveries",
        ["subscription_id", "status"],
    )
    if subscription_index_only:
        return
    op.create_index(
        "ix_callback_deliveries_pending_account_id",
        "callback_deliveries",
        ["account_id", "next_attempt_at"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    op.create_index(
        "ix_callback_deliveries_account_id_status", "callback_deliveries", ["account_id", "status"]
    )
    op.create_index(
        "ix_callback_deliveries_account_id_created_at",
        "callback_deliveries",
        ["account_id", "created_at"],
    )


def _rebuild_on_sqlite() -> None:
    op.execute(KEEP_ATTEMPTS)
    op.drop_index("ix_callback_attempts_delivery_id", table_name="callback_attempts")
    op.drop_table("callback_attempts")  # nothing refers to it: no cascade
    _deliveries_table("_deliveries_new")
    op.execute(COPY_DELIVERIES)
    op.drop_table("callback_deliveries")  # its only referrer is gone: no cascade
    op.rename_table("_deliveries_new", "callback_deliveries")
    _delivery_indexes()
    _attempts_table()
    op.execute(RESTORE_ATTEMPTS)
    op.drop_table("_attempts_kept")


def _attempts_table() -> None:
    op.create_table(
        "callback_attempts",
        sa.Column("id", Id, nullable=False),
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
    op.create_index("ix_callback_attempts_delivery_id", "callback_attempts", ["delivery_id"])


def downgrade() -> None:
    # Subscriptions' messages cannot live in the older table: they go with the subscriptions.
    op.execute("DELETE FROM callback_deliveries WHERE item_id IS NULL")
    if op.get_bind().dialect.name == "sqlite":
        op.execute(KEEP_ATTEMPTS)
        op.drop_index("ix_callback_attempts_delivery_id", table_name="callback_attempts")
        op.drop_table("callback_attempts")
        with op.batch_alter_table("callback_deliveries", recreate="always") as batch_op:
            batch_op.drop_index("ix_callback_deliveries_subscription_id_status")
            batch_op.drop_constraint("ck_callback_deliveries_kind", type_="check")
            batch_op.drop_column("subscription_id")
            batch_op.drop_column("event_id")
            batch_op.alter_column("item_id", existing_type=Id, nullable=False)
        _attempts_table()
        op.execute(RESTORE_ATTEMPTS)
        op.drop_table("_attempts_kept")
    else:
        op.drop_index(
            "ix_callback_deliveries_subscription_id_status", table_name="callback_deliveries"
        )
        op.drop_constraint("ck_callback_deliveries_kind", "callback_deliveries", type_="check")
        op.drop_constraint(
            "fk_callback_deliveries_subscription_id_event_subscriptions",
            "callback_deliveries",
            type_="foreignkey",
        )
        op.drop_column("callback_deliveries", "event_id")
        op.drop_column("callback_deliveries", "subscription_id")
        op.alter_column("callback_deliveries", "item_id", existing_type=Id, nullable=False)
    op.drop_index("ix_event_subscriptions_status_account_id", table_name="event_subscriptions")
    op.drop_index("ix_event_subscriptions_account_id_id", table_name="event_subscriptions")
    op.drop_table("event_subscriptions")
