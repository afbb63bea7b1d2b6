"""What reaching a threshold does beyond its event: an account whose usage policy is
``deactivate`` has each SIM that reaches a threshold (``usage.limit_exceeded``) deactivated
through the normal lifecycle pipeline, in the same transaction as the usage that reached it: one
deactivation request per batch and account (a TrackingNumber, items the worker executes, the
documented status message to the account's callback URL, an audit entry by "usage policy").

The status messages of these requests carry ``x-callback-token: usage-policy``: nobody sent a
token for them, and the value tells a receiver what caused them. A SIM that is not Active when
its limit is reached is left as it is (a request for it would only fail). Reactivating at the
next period is not automatic yet: the customer (or the operator) reactivates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Connection

from m2m.audit import Actor, ActorKind
from m2m.clock import Clock
from m2m.identifiers import IdentifierType, SimState
from m2m.intake import Device, accept_request_in
from m2m.lifecycle import Operation
from m2m.storage.usage_ingest import Crossing
from m2m.usage import Level

POLICY_CALLBACK_TOKEN = "usage-policy"  # noqa: S105 - a label, not a secret
USAGE_POLICY = Actor(ActorKind.SYSTEM, "usage policy")


def enforce(conn: Connection, clock: Clock, crossings: Sequence[Crossing]) -> list[str]:
    """Deactivate what the accounts' policies say (see the module); the TrackingNumbers."""
    by_account: dict[int, dict[str, None]] = defaultdict(dict)
    for crossing in crossings:
        sim = crossing.sim
        if (
            crossing.level is Level.LIMIT
            and sim.policy == "deactivate"
            and sim.state == SimState.ACTIVE.value
        ):
            by_account[sim.account_id][sim.iccid] = None  # once, in order
    return [
        accept_request_in(
            conn,
            clock,
            account_id,
            Operation.DEACTIVATION,
            [Device(iccid, IdentifierType.ICCID) for iccid in iccids],
            POLICY_CALLBACK_TOKEN,
            actor=lambda _conn: USAGE_POLICY,
        )
        for account_id, iccids in sorted(by_account.items())
    ]
