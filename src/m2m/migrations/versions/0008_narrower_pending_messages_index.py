"""the pending-messages index without the message id: narrower to update at every claim and
attempt (the claim orders an account's due messages by next_attempt_at alone)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_callback_deliveries_pending_account_id"
PENDING = sa.text("status = 'pending'")


def _replace(columns: list[str]) -> None:
    op.drop_index(
        NAME, table_name="callback_deliveries", sqlite_where=PENDING, postgresql_where=PENDING
    )
    op.create_index(
        NAME,
        "callback_deliveries",
        columns,
        unique=False,
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def upgrade() -> None:
    _replace(["account_id", "next_attempt_at"])


def downgrade() -> None:
    _replace(["account_id", "next_attempt_at", "id"])
