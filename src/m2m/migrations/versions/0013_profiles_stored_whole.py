"""every SIM profile stored as the list answers it: the five documented keys in order and all
seven custom fields, so that a list page splices the stored text instead of decoding it

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01

Data only (no schema change). The rule is written out here, not imported from
``m2m.profile.stored_profile``, so that this revision keeps doing what it did when that
function changes. Rows are read and rewritten in batches by id, so memory stays flat whatever
the inventory's size; a row already in that form is left alone.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYS = ("AccessPoints", "CustomFields", "DataService", "SMSService", "VoiceService")
_EMPTY: dict[str, Any] = {"AccessPoints": []}
_CUSTOM_FIELDS = tuple(f"Custom Field {n}" for n in range(1, 8))
_BATCH = 5000

_sim_cards = sa.table(
    "sim_cards", sa.column("id", sa.BigInteger()), sa.column("profile", sa.JSON())
)


def _whole(profile: dict[str, Any]) -> dict[str, Any]:
    custom = profile.get("CustomFields", {})
    whole = {key: profile.get(key, _EMPTY.get(key, {})) for key in _KEYS}
    whole["CustomFields"] = {name: custom.get(name, "") for name in _CUSTOM_FIELDS}
    return whole


def _is_whole(profile: dict[str, Any]) -> bool:
    custom = profile.get("CustomFields")
    return tuple(profile) == _KEYS and isinstance(custom, dict) and tuple(custom) == _CUSTOM_FIELDS


def upgrade() -> None:
    conn = op.get_bind()
    read = (
        sa.select(_sim_cards.c.id, _sim_cards.c.profile)
        .where(_sim_cards.c.id > sa.bindparam("after"))
        .order_by(_sim_cards.c.id)
        .limit(_BATCH)
    )
    write = (
        sa.update(_sim_cards)
        .where(_sim_cards.c.id == sa.bindparam("sim_id"))
        .values(profile=sa.bindparam("whole", type_=sa.JSON()))
    )
    after = 0
    while True:
        rows = conn.execute(read, {"after": after}).all()
        if not rows:
            return
        changed = [
            {"sim_id": sim_id, "whole": _whole(profile)}
            for sim_id, profile in rows
            if not _is_whole(profile)
        ]
        if changed:
            conn.execute(write, changed)
        after = rows[-1][0]


def downgrade() -> None:
    """Nothing to undo: a whole profile is a valid profile for every earlier revision."""
