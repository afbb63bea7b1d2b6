"""operable in production (issue 17): worker heartbeats, and the X-Request-ID of a lifecycle
request's call

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from m2m.storage.tables import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.Column("items_held", sa.Integer(), nullable=False),
        sa.Column("messages_held", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_heartbeats")),
    )
    with op.batch_alter_table("lifecycle_requests") as batch:
        batch.add_column(sa.Column("http_request_id", sa.String(length=100), nullable=True))


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN on both (SQLite 3.35+), not a batch rebuild: on SQLite, with
    # foreign keys on, the rebuild's DROP TABLE deleted every request's items (ON DELETE CASCADE).
    op.drop_column("lifecycle_requests", "http_request_id")
    op.drop_table("worker_heartbeats")
