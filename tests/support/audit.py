"""The audit trail as stored: every row, and a watch that says what one change added."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from m2m.storage.tables import audit_events


def audit_rows(engine: Engine) -> list[dict[str, Any]]:
    """Every stored audit event, oldest first, as plain dicts."""
    with engine.connect() as conn:
        rows = conn.execute(select(audit_events).order_by(audit_events.c.id))
        return [dict(row._mapping) for row in rows]


def stored_text(engine: Engine) -> str:
    """All the audit rows as one text, to search for a secret that must not be in it."""
    return json.dumps(audit_rows(engine), default=str)


@dataclass
class AuditWatch:
    """``watch.one()`` after each change: the single entry it added (and no other)."""

    engine: Engine
    seen: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.seen = len(audit_rows(self.engine))

    def new(self) -> list[dict[str, Any]]:
        rows = audit_rows(self.engine)
        added, self.seen = rows[self.seen :], len(rows)
        return added

    def one(self, action: str) -> dict[str, Any]:
        added = self.new()
        assert [row["action"] for row in added] == [action], added
        return added[0]
