"""open items per sim index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("request_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_request_items_open_sim_id_id",
            ["sim_id", "id"],
            unique=False,
            sqlite_where=sa.text("status != 'done'"),
            postgresql_where=sa.text("status != 'done'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("request_items", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_request_items_open_sim_id_id",
            sqlite_where=sa.text("status != 'done'"),
            postgresql_where=sa.text("status != 'done'"),
        )
