"""The audit trail's storage: one row per change, written in the change's own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, or_, select

from m2m.audit import Actor
from m2m.storage.prepared import PreparedStatement, insert_values
from m2m.storage.tables import audit_events

# The columns' bounds: an actor's name or a subject longer than its column is cut, never refused
# (the change itself was valid; its record must not fail it).
_ACTOR_LENGTH = 320
_SUBJECT_LENGTH = 100


# Built once and prepared (``storage.prepared``): building the statement per call, then running
# it through SQLAlchemy's execution layer, cost more CPU than the database spent on it.
_INSERT = PreparedStatement(
    insert_values(
        audit_events,
        (
            "account_id",
            "occurred_at",
            "actor_kind",
            "actor",
            "action",
            "subject_kind",
            "subject",
            "changes",
            "request_id",
        ),
    )
)


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
    _INSERT.run(
        conn,
        {
            "account_id": account_id,
            "occurred_at": now,
            "actor_kind": actor.kind.value,
            "actor": actor.name[:_ACTOR_LENGTH],
            "action": action,
            "subject_kind": subject_kind,
            "subject": subject[:_SUBJECT_LENGTH],
            "changes": changes,
            "request_id": actor.request_id,
        },
    )


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    occurred_at: datetime
    actor_kind: str
    actor: str
    action: str
    subject_kind: str
    subject: str
    changes: dict[str, Any]
    request_id: str | None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which of an account's events to list; every field left empty selects all."""

    subject_kind: str | None = None  # "sim", "request", "api_key", …
    subject: str | None = None  # a SIM's ICCID, a TrackingNumber, a client_id, …
    actor: str | None = None  # exactly as recorded: a client_id, a token's name, an email
    actions: tuple[str, ...] = ()  # exact names, or prefixes ending in "." ("request.")
    since: datetime | None = None  # occurred at or after
    until: datetime | None = None  # occurred before


def _action_clause(actions: tuple[str, ...]) -> ColumnElement[bool]:
    exact = [a for a in actions if not a.endswith(".")]
    clauses: list[ColumnElement[bool]] = [audit_events.c.action.in_(exact)] if exact else []
    clauses += [
        audit_events.c.action.startswith(prefix, autoescape=True)
        for prefix in actions
        if prefix.endswith(".")
    ]
    return or_(*clauses)


def list_events(
    conn: Connection,
    account_id: int,
    wanted: AuditFilter,
    *,
    before_id: int | None,
    limit: int,
) -> list[AuditEvent]:
    """Up to ``limit`` of the account's events, newest first, from before ``before_id`` (the
    last id of the previous page: keyset paging over the (account_id, id) index, or
    (account_id, subject, id) when one subject is asked for)."""
    query = select(*_EVENT_COLUMNS).where(audit_events.c.account_id == account_id)
    if before_id is not None:
        query = query.where(audit_events.c.id < before_id)
    if wanted.subject_kind is not None:
        query = query.where(audit_events.c.subject_kind == wanted.subject_kind)
    if wanted.subject is not None:
        query = query.where(audit_events.c.subject == wanted.subject)
    if wanted.actor is not None:
        query = query.where(audit_events.c.actor == wanted.actor)
    if wanted.actions:
        query = query.where(_action_clause(wanted.actions))
    if wanted.since is not None:
        query = query.where(audit_events.c.occurred_at >= wanted.since)
    if wanted.until is not None:
        query = query.where(audit_events.c.occurred_at < wanted.until)
    rows = conn.execute(query.order_by(audit_events.c.id.desc()).limit(limit))
    return [AuditEvent(**row._mapping) for row in rows]


_EVENT_COLUMNS = (
    audit_events.c.id,
    audit_events.c.occurred_at,
    audit_events.c.actor_kind,
    audit_events.c.actor,
    audit_events.c.action,
    audit_events.c.subject_kind,
    audit_events.c.subject,
    audit_events.c.changes,
    audit_events.c.request_id,
)
