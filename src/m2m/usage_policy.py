"""What reaching a threshold does beyond its event: an account whose usage policy is
``deactivate`` has each SIM that reaches a threshold (``usage.limit_exceeded``) deactivated
through the normal lifecycle pipeline, in the same transaction as the usage that reached it: one
deactivation request per batch and account (a TrackingNumber, items the worker executes, the
documented status message to the account's callback URL, an audit entry by "usage policy").

Each deactivation is recorded per SIM and period that reached its limit, in the same
transaction; when the period ends, the worker's step (``reactivate_due``) reactivates the SIM
the same way if the account asks for it (``usage_reactivate``, see
``m2m.usage_reactivation``). A SIM the policy deactivated that reaches another period's limit
(its month's, say, while off for its day) gets no second request: its deactivation is recorded
for that period too, so that it is back only when the later period ends.

The status messages of these requests carry ``x-callback-token: usage-policy``: nobody sent a
token for them, and the value tells a receiver what caused them. A SIM is judged by the state it
will be in once its waiting lifecycle items have run: one whose deactivation is still queued
gets no second request, one whose reactivation is queued is deactivated again after it, and
one that will not be Active (and is not kept off by the policy already) is left as it is: a
request for it would only fail.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

from m2m.audit import Actor, ActorKind
from m2m.clock import Clock
from m2m.events import Cause
from m2m.identifiers import IdentifierType, SimState
from m2m.intake import Device, accept_request_in
from m2m.lifecycle import TRANSITIONS, Operation
from m2m.storage import usage_deactivations as deactivation_store
from m2m.storage.usage_deactivations import NewDeactivation
from m2m.storage.usage_ingest import Crossing
from m2m.usage import Level
from m2m.usage_reactivation import period_end, should_reactivate, worth_deactivating

POLICY_CALLBACK_TOKEN = "usage-policy"  # noqa: S105 - a label, not a secret
USAGE_POLICY = Actor(ActorKind.SYSTEM, "usage policy")
# SIMs taken up per step of the worker: a transaction of a bounded size (the step repeats
# while it finds as many).
REACTIVATION_BATCH = 500


def _deactivation(crossing: Crossing) -> NewDeactivation:
    sim = crossing.sim
    return NewDeactivation(
        sim_id=sim.id,
        account_id=sim.account_id,
        period=crossing.period.value,
        period_start=crossing.period_start,
        period_ends_at=period_end(crossing.period, crossing.period_start, sim.zone),
    )


def state_after(state: str, waiting_operation: str | None) -> str:
    """A SIM's state once its waiting lifecycle items have run, as far as the policy is
    concerned: the state the last one leads to (None: none waits)."""
    if waiting_operation is None:
        return state
    return TRANSITIONS[Operation(waiting_operation)][1].value


def enforce(conn: Connection, clock: Clock, crossings: Sequence[Crossing]) -> list[str]:
    """Deactivate what the accounts' policies say (see the module); the TrackingNumbers."""
    now = clock.now()
    reached = [
        (c.sim, _deactivation(c))
        for c in crossings
        if c.level is Level.LIMIT and c.sim.policy == "deactivate"
    ]
    back_at_the_end = deactivation_store.reactivating_accounts(
        conn, (sim.account_id for sim, _ in reached)
    )
    reached = [
        (sim, d)
        for sim, d in reached
        if worth_deactivating(d.period_ends_at, now, sim.account_id in back_at_the_end)
    ]
    to_deactivate: dict[int, dict[str, list[NewDeactivation]]] = defaultdict(dict)
    # The state each SIM will be in once its waiting items have run: a reactivation the worker
    # has queued makes it Active again (deactivate it once more, after that), a deactivation
    # already queued keeps it off (no second request).
    waiting = deactivation_store.last_waiting_operations(conn, (sim.id for sim, _ in reached))
    state = {sim.id: state_after(sim.state, waiting.get(sim.id)) for sim, _ in reached}
    kept_off = deactivation_store.open_deactivations(
        conn, (sim_id for sim_id, s in state.items() if s == SimState.DEACTIVATED.value)
    )
    extended: dict[str, list[NewDeactivation]] = defaultdict(list)
    for sim, deactivation in reached:
        if state[sim.id] == SimState.ACTIVE.value:
            # once per SIM, in order; a row per period that reached its limit
            to_deactivate[sim.account_id].setdefault(sim.iccid, []).append(deactivation)
        elif sim.id in kept_off:
            extended[kept_off[sim.id]].append(deactivation)
    for tracking_number, deactivations in extended.items():
        deactivation_store.record(conn, tracking_number, deactivations, now)
    tracking_numbers = []
    for account_id, by_iccid in sorted(to_deactivate.items()):
        tracking_number = _request(conn, clock, account_id, Operation.DEACTIVATION, by_iccid)
        deactivations = [d for rows in by_iccid.values() for d in rows]
        deactivation_store.record(conn, tracking_number, deactivations, now)
        tracking_numbers.append(tracking_number)
    return tracking_numbers


def reactivate_due(
    conn: Connection, clock: Clock, limit: int = REACTIVATION_BATCH
) -> tuple[int, list[str]]:
    """Take up the SIMs whose deactivation period has ended (at most ``limit``) and reactivate
    those the accounts still want back, one request per account, on ``conn``'s transaction:
    (how many SIMs were taken up, the TrackingNumbers). A SIM no longer Deactivated, or of an
    account that no longer asks, has its rows closed without a request."""
    due = deactivation_store.claim_due(conn, clock.now(), limit)
    wanted: dict[int, list[deactivation_store.DueSim]] = defaultdict(list)
    for sim in due:
        if should_reactivate(sim.state, sim.account_reactivates, sim.policy_changed_it_last):
            wanted[sim.account_id].append(sim)
    tracking_numbers = []
    for account_id, sims in sorted(wanted.items()):
        iccids = [sim.iccid for sim in sims]
        tracking_number = _request(conn, clock, account_id, Operation.REACTIVATION, iccids)
        row_ids = [row_id for sim in sims for row_id in sim.row_ids]
        deactivation_store.set_reactivation(conn, row_ids, tracking_number)
        tracking_numbers.append(tracking_number)
    return len(due), tracking_numbers


def _request(
    conn: Connection, clock: Clock, account_id: int, operation: Operation, iccids: Iterable[str]
) -> str:
    """A lifecycle request of the usage policy's for the account's SIMs ``iccids``: its
    status messages carry ``POLICY_CALLBACK_TOKEN``, its audit entry the policy as actor."""
    return accept_request_in(
        conn,
        clock,
        account_id,
        operation,
        [Device(iccid, IdentifierType.ICCID) for iccid in iccids],
        POLICY_CALLBACK_TOKEN,
        actor=lambda _conn: USAGE_POLICY,
        cause=Cause.THRESHOLD_POLICY,
    )
