"""The audit trail's storage: one row per change, written in the change's own transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from m2m.audit import Actor
from m2m.storage.tables import audit_events

# The columns' bounds: an actor's name or a subject longer than its column is cut, never refused
# (the change itself was valid; its record must not fail it).
_ACTOR_LENGTH = 320
_SUBJECT_LENGTH = 100


def record(
    conn: Connection,
    *,
    account_id: int,
    actor: Actor,
    action: str,
    subject_kind: str,
    subject: str,
    changes: dict[str, Any],
    now: datetime,
) -> None:
    """Record one change, on ``conn``'s transaction: it commits, or rolls back, with the change."""
    conn.execute(
        insert(audit_events).values(
            account_id=account_id,
            occurred_at=now,
            actor_kind=actor.kind.value,
            actor=actor.name[:_ACTOR_LENGTH],
            action=action,
            subject_kind=subject_kind,
            subject=subject[:_SUBJECT_LENGTH],
            changes=changes,
            request_id=actor.request_id,
        )
    )
