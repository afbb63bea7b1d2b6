"""when the signing secret was last rotated (the previous one signs too for a while)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from m2m.storage.tables import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("callback_configs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signing_key_rotated_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("callback_configs", schema=None) as batch_op:
        batch_op.drop_column("signing_key_rotated_at")
