"""The fan-out: from the event log to each subscription's messages in the callback outbox.

Run by the worker at the start of each delivery round, in the claim's transaction. For every
enabled subscription with events past its cursor it reads the next events in id order (at most
``batch``), keeps those it wants (``events.subscribed``: its type patterns expanded against the
catalog as it is now, so ``sim.*`` takes in types added later; its label filter), queues one
message each and moves the cursor past everything read, in that one transaction: an event is
queued once per subscription, never lost and never doubled. A paused subscription is not read:
its cursor waits, and resuming it delivers what happened meanwhile (while it is kept).

**Status messages first.** While an account has documented status messages under way (a bulk
request's, due or being sent; not retries waiting for a later attempt), its subscriptions' new
events wait for up to ``STATUS_MESSAGES_FIRST_FOR`` before they are queued: on a busy worker an
event costs what a status message costs to send, so a ``sim.*`` subscription queued beside a
10,000-device request made its status messages arrive 1.75 times later. The documented flow
keeps its speed; the events follow it, never more than that long behind it (an event older than
that is queued at once, so a steady stream of status messages cannot hold events for ever). An
account with no status message under way has its events queued at once, as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from m2m.events import InvalidTypePattern, selected_types, subscribed
from m2m.storage import event_subscriptions as subscription_store
from m2m.storage import events as event_store
from m2m.storage import outbox

log = logging.getLogger("m2m.callbacks")

BATCH = 500  # events read per subscription and round
SUBSCRIPTIONS_PER_ROUND = 100
STATUS_MESSAGES_FIRST_FOR = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class FanOut:
    queued: int  # messages queued
    more: bool  # a subscription had more events than one batch, or more subscriptions waited


def fan_out(
    conn: Connection,
    now: datetime,
    *,
    batch: int = BATCH,
    subscriptions: int = SUBSCRIPTIONS_PER_ROUND,
) -> FanOut:
    queued = 0
    more = False
    targets = subscription_store.fan_out_targets(conn, subscriptions)
    status_under_way: dict[int, bool] = {}
    for target in targets:
        if target.account_id not in status_under_way:
            status_under_way[target.account_id] = outbox.status_messages_under_way(
                conn, target.account_id, now
            )
        if status_under_way[target.account_id] and events_wait(
            event_store.next_occurred_at(conn, target.account_id, target.through_event_id), now
        ):
            continue  # a later round queues them (the worker polls while any wait)
        found = subscription_store.events_after(
            conn, target.account_id, target.through_event_id, batch
        )
        if not found:
            continue
        types = _types(target.event_types)
        wanted = [
            event
            for event in found
            if subscribed(types, target.label_filter, event.type, event.labels)
        ]
        queued += subscription_store.enqueue(conn, target.id, target.account_id, wanted, now)
        subscription_store.advance(conn, target.id, found[-1].id)
        more = more or len(found) >= batch
    return FanOut(queued, more or len(targets) >= subscriptions)


def events_wait(next_event_at: datetime | None, now: datetime) -> bool:
    """Whether an account's new events, the first of which occurred at ``next_event_at``, wait
    behind its status messages under way: while that first one is younger than the allowance."""
    return next_event_at is not None and now - next_event_at < STATUS_MESSAGES_FIRST_FOR


def _types(patterns: list[str]) -> frozenset[str] | None:
    """The types the patterns select now. Patterns are checked when saved; one that no longer
    names a type of the catalog selects nothing, rather than stopping the subscription."""
    chosen: set[str] = set()
    for pattern in patterns:
        try:
            selected = selected_types([pattern])
        except InvalidTypePattern:
            continue
        if selected is None:
            return None
        chosen |= selected
    return frozenset(chosen)
