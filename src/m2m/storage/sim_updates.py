"""Updating a SIM's editable fields (``m2m.sim_edit`` decides what a patch does): one transaction
that reads the row locked, checks the caller's version, writes the new fields, keeps
``sim_labels`` equal to the labels, bumps ``version`` and records the audit entry and the
``sim.updated`` event."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from m2m.audit import Actor
from m2m.events import EventType, updated_data, version_of
from m2m.sim_edit import EditableSim, FieldProblem, apply_edit, changed_fields
from m2m.storage import audit
from m2m.storage import events as event_store
from m2m.storage.prepared import PreparedStatement, insert_values
from m2m.storage.tables import sim_cards, sim_labels

_c = sim_cards.c


@dataclass(frozen=True, slots=True)
class SimRow:
    """A SIM as an update answers it: identifiers, state, editable fields, version."""

    iccid: str
    msisdn: str
    imsi: str
    state: str
    cost_center: str | None
    profile: dict[str, Any]
    labels: dict[str, str]
    version: int


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    """What an update did. ``sim`` is None when the account has no SIM with that ICCID;
    ``stale`` when the caller's version did not match (nothing written, ``sim`` as it is);
    ``problems`` when the patch is refused (nothing written)."""

    sim: SimRow | None
    stale: bool = False
    problems: tuple[FieldProblem, ...] = ()
    changed: bool = False


# Built once and prepared (``storage.prepared``): through SQLAlchemy's execution layer, the
# statements of an update cost more CPU than the database spent running them.
_READ = select(
    _c.id,
    _c.iccid,
    _c.msisdn,
    _c.imsi,
    _c.state,
    _c.cost_center,
    _c.profile,
    _c.labels,
    _c.version,
).where(_c.account_id == bindparam("account_id"), _c.iccid == bindparam("iccid"))
# PostgreSQL locks the row for the transaction; SQLite's write transaction holds the lock.
_READ_LOCKED = {True: PreparedStatement(_READ.with_for_update()), False: PreparedStatement(_READ)}
_WRITE = PreparedStatement(
    update(sim_cards)
    .where(_c.id == bindparam("sim_id"))
    .values(
        profile=bindparam("profile", type_=sim_cards.c.profile.type),
        cost_center=bindparam("cost_center", type_=sim_cards.c.cost_center.type),
        labels=bindparam("labels", type_=sim_cards.c.labels.type),
        updated_at=bindparam("updated_at", type_=sim_cards.c.updated_at.type),
        version=bindparam("version", type_=sim_cards.c.version.type),
    )
)


def _read_locked(conn: Connection, account_id: int, iccid: str) -> tuple[int, SimRow] | None:
    query = _READ_LOCKED[conn.dialect.name == "postgresql"]
    row = query.first(conn, {"account_id": account_id, "iccid": iccid})
    if row is None:
        return None
    sim_id, *rest = row
    return sim_id, SimRow(*rest)


def update_sim(
    conn: Connection,
    *,
    account_id: int,
    iccid: str,
    patch: object,
    if_match: Collection[int] | None,
    actor: Callable[[Connection], Actor],
    now: datetime,
) -> UpdateOutcome:
    """Apply ``patch`` to the account's SIM ``iccid`` in ``conn``'s write transaction, when its
    version is one of ``if_match`` (None: any). ``actor`` names who, asked only when something
    changes. A patch that changes nothing writes nothing. Every refusal (no SIM, a stale
    version, a refused field) is decided before the first write, and nothing after it refuses:
    the PATCH route relies on that to skip a savepoint (``refuses_before_writing``)."""
    found = _read_locked(conn, account_id, iccid)
    if found is None:
        return UpdateOutcome(None)
    sim_id, sim = found
    if if_match is not None and sim.version not in if_match:
        return UpdateOutcome(sim, stale=True)
    current = EditableSim(sim.profile, sim.cost_center, dict(sim.labels))
    result = apply_edit(current, patch)
    if result.sim is None:
        return UpdateOutcome(sim, problems=result.problems)
    changes = changed_fields(current, result.sim)
    if not changes:
        return UpdateOutcome(sim)
    edited = result.sim
    version = sim.version + 1
    _WRITE.run(
        conn,
        {
            "sim_id": sim_id,
            "profile": edited.profile,
            "cost_center": edited.cost_center,
            "labels": edited.labels,
            "updated_at": now,
            "version": version,
        },
    )
    if edited.labels != sim.labels:
        _write_labels(conn, account_id, sim_id, sim.labels, edited.labels)
    audit.record(
        conn,
        account_id=account_id,
        actor=actor(conn),
        action="sim.updated",
        subject_kind="sim",
        subject=sim.iccid,
        changes=changes,
        now=now,
    )
    # The customer's event, beside the operator's audit entry, in the same transaction.
    event_store.record(
        conn,
        [
            event_store.NewEvent(
                account_id=account_id,
                type=EventType.SIM_UPDATED.value,
                version=version_of(EventType.SIM_UPDATED),
                occurred_at=now,
                sim_id=sim_id,
                sim=event_store.sim_snapshot(sim.iccid, sim.msisdn, edited.labels),
                data=updated_data(changes),
            )
        ],
    )
    updated = SimRow(
        sim.iccid,
        sim.msisdn,
        sim.imsi,
        sim.state,
        edited.cost_center,
        edited.profile,
        edited.labels,
        version,
    )
    return UpdateOutcome(updated, changed=True)


# One key a row (executemany): an expanding IN would be a new statement for each count of keys.
_DELETE_LABEL = PreparedStatement(
    delete(sim_labels).where(
        sim_labels.c.sim_id == bindparam("sim_id"), sim_labels.c.key == bindparam("key")
    )
)
_INSERT_LABEL = PreparedStatement(
    insert_values(sim_labels, ("sim_id", "key", "account_id", "value"))
)


def _write_labels(
    conn: Connection, account_id: int, sim_id: int, before: dict[str, str], after: dict[str, str]
) -> None:
    """Keep ``sim_labels`` equal to the labels document: only the pairs that changed."""
    gone = [{"sim_id": sim_id, "key": key} for key in before if before[key] != after.get(key)]
    _DELETE_LABEL.run_many(conn, gone)
    added = [
        {"sim_id": sim_id, "key": key, "account_id": account_id, "value": value}
        for key, value in after.items()
        if before.get(key) != value
    ]
    _INSERT_LABEL.run_many(conn, added)
