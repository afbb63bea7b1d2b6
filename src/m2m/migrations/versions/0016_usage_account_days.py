"""usage per account and day (issue 15): the account's days without summing every SIM's,
filled from the daily aggregates already counted

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from m2m.storage.tables import Id

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = ("data_up_bytes", "data_down_bytes", "sms_out", "sms_in", "voice_seconds")
# Table and column names only, no input: S608 does not apply.
_FILL = (
    f"INSERT INTO usage_account_daily (account_id, day, {', '.join(COUNTERS)}) "  # noqa: S608
    f"SELECT account_id, day, {', '.join(f'SUM({c})' for c in COUNTERS)} "
    "FROM usage_daily GROUP BY account_id, day"
)


def upgrade() -> None:
    op.create_table(
        "usage_account_daily",
        sa.Column("account_id", Id, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *[
            sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)
            for name in COUNTERS
        ],
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_usage_account_daily_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "day", name=op.f("pk_usage_account_daily")),
        sqlite_with_rowid=False,
    )
    op.execute(_FILL)


def downgrade() -> None:
    op.drop_table("usage_account_daily")
