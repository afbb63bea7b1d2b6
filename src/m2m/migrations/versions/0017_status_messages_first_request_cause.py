"""an index of the pending status messages by account (the fan-out asks whether an account has
status messages under way before queueing its events behind them), and why a lifecycle request
was made (its state changes' events name the usage policy as their cause)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING_STATUS_MESSAGES = sa.text("status = 'pending' AND item_id IS NOT NULL")


def upgrade() -> None:
    # A plain ADD COLUMN on SQLite (not a batch rebuild: rebuilding a table that others reference
    # with ON DELETE CASCADE deletes their rows).
    op.add_column(
        "lifecycle_requests",
        sa.Column("cause", sa.String(length=16), server_default="request", nullable=False),
    )
    op.create_index(
        "ix_callback_deliveries_pending_status_account_id",
        "callback_deliveries",
        ["account_id", "next_attempt_at"],
        sqlite_where=_PENDING_STATUS_MESSAGES,
        postgresql_where=_PENDING_STATUS_MESSAGES,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_callback_deliveries_pending_status_account_id", table_name="callback_deliveries"
    )
    # ALTER TABLE … DROP COLUMN on both (SQLite 3.35+), not a batch rebuild, for the same
    # reason as the upgrade: rebuilding lifecycle_requests deleted every request's items.
    op.drop_column("lifecycle_requests", "cause")
