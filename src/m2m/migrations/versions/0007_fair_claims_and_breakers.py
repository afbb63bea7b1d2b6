"""fair claims (per-account and per-request indexes) and per-endpoint circuit breakers

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from m2m.storage.tables import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_REQUEST = sa.text("finished_at IS NULL")
PENDING = sa.text("status = 'pending'")
CLAIMED = sa.text("status = 'claimed'")
NOT_DONE = sa.text("status != 'done'")


def upgrade() -> None:
    with op.batch_alter_table("callback_configs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("breaker_failures", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("breaker_trips", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("breaker_open_until", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("breaker_probe_id", sa.String(length=36), nullable=True))
    op.create_index(
        "ix_lifecycle_requests_open_account_id_id",
        "lifecycle_requests",
        ["account_id", "id"],
        unique=False,
        sqlite_where=OPEN_REQUEST,
        postgresql_where=OPEN_REQUEST,
    )
    op.create_index(
        "ix_request_items_pending_request_id_id",
        "request_items",
        ["request_id", "id"],
        unique=False,
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    op.create_index(
        "ix_request_items_claimed_lease_expires_at",
        "request_items",
        ["lease_expires_at"],
        unique=False,
        sqlite_where=CLAIMED,
        postgresql_where=CLAIMED,
    )
    op.create_index(
        "ix_callback_deliveries_pending_account_id",
        "callback_deliveries",
        ["account_id", "next_attempt_at", "id"],
        unique=False,
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    # Only the oldest-first claims of 0002 read these; every insert and update paid for them.
    op.drop_index(
        "ix_request_items_open",
        table_name="request_items",
        sqlite_where=NOT_DONE,
        postgresql_where=NOT_DONE,
    )
    op.drop_index(
        "ix_callback_deliveries_due",
        table_name="callback_deliveries",
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def downgrade() -> None:
    op.create_index(
        "ix_callback_deliveries_due",
        "callback_deliveries",
        ["next_attempt_at"],
        unique=False,
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    op.create_index(
        "ix_request_items_open",
        "request_items",
        ["id"],
        unique=False,
        sqlite_where=NOT_DONE,
        postgresql_where=NOT_DONE,
    )
    op.drop_index("ix_callback_deliveries_pending_account_id", table_name="callback_deliveries")
    op.drop_index("ix_request_items_claimed_lease_expires_at", table_name="request_items")
    op.drop_index("ix_request_items_pending_request_id_id", table_name="request_items")
    op.drop_index("ix_lifecycle_requests_open_account_id_id", table_name="lifecycle_requests")
    with op.batch_alter_table("callback_configs", schema=None) as batch_op:
        batch_op.drop_column("breaker_probe_id")
        batch_op.drop_column("breaker_open_until")
        batch_op.drop_column("breaker_trips")
        batch_op.drop_column("breaker_failures")
