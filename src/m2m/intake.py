"""Accepting a lifecycle request: the one pipeline behind the API's four endpoints and the
console's actions.

The request and one item per device are committed together, each device resolved to the
account's SIM (or to none: it will fail "Device not found."); workers do the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from m2m import metrics
from m2m.audit import Actor, created
from m2m.clock import Clock
from m2m.events import Cause
from m2m.identifiers import IdentifierType
from m2m.lifecycle import Operation
from m2m.storage import audit as audit_store
from m2m.storage import request_intake
from m2m.storage.engine import write_transaction

_COLUMN = {
    IdentifierType.MSISDN: "msisdn",
    IdentifierType.ICCID: "iccid",
    IdentifierType.IMSI: "imsi",
}


@dataclass(frozen=True, slots=True)
class Device:
    identifier: str  # already validated and normalised
    identifier_type: IdentifierType


def accept_request(
    engine: Engine,
    clock: Clock,
    account_id: int,
    operation: Operation,
    devices: Sequence[Device],
    callback_token: str,
    *,
    actor: Actor,
) -> str:
    """Commit the request for every device at once, and its one audit entry (the request, not
    each SIM: see ``m2m.audit``); returns its TrackingNumber."""
    with write_transaction(engine) as conn:
        return accept_request_in(
            conn, clock, account_id, operation, devices, callback_token, actor=lambda _: actor
        )


def accept_request_in(
    conn: Connection,
    clock: Clock,
    account_id: int,
    operation: Operation,
    devices: Sequence[Device],
    callback_token: str,
    *,
    actor: Callable[[Connection], Actor],
    cause: Cause = Cause.REQUEST,
) -> str:
    """``accept_request`` on the caller's write transaction (which may record more with it, such
    as the answer to an Idempotency-Key); returns the TrackingNumber. ``actor`` names who, asked
    on that transaction; ``cause`` is what its state changes' events give as theirs."""
    tracking_number = str(uuid.uuid4())
    request_intake.serialize_acceptance(conn, account_id)
    sim_ids: dict[tuple[IdentifierType, str], int] = {}
    for kind in IdentifierType:
        wanted = [d.identifier for d in devices if d.identifier_type is kind]
        if wanted:
            found = request_intake.resolve_sims(conn, account_id, _COLUMN[kind], wanted)
            sim_ids.update({(kind, k): v for k, v in found.items()})
    now = clock.now()
    who = actor(conn)
    request_intake.create_request(
        conn,
        tracking_number=tracking_number,
        account_id=account_id,
        operation=operation.value,
        callback_token=callback_token,
        items=[
            {
                "identifier": d.identifier,
                "identifier_type": d.identifier_type.value,
                "sim_id": sim_ids.get((d.identifier_type, d.identifier)),
            }
            for d in devices
        ],
        now=now,
        http_request_id=who.request_id,
        cause=cause.value,
    )
    # Counted before the commit: the rare acceptance that then fails (the database went away)
    # is counted all the same, where counting after it would need every caller's help.
    metrics.ITEMS_ACCEPTED.labels(operation.value).inc(len(devices))
    audit_store.record(
        conn,
        account_id=account_id,
        actor=who,
        action=f"request.{operation.value}",
        subject_kind="request",
        subject=tracking_number,
        changes=created(operation=operation.value, devices=len(devices)),
        now=now,
    )
    return tracking_number
