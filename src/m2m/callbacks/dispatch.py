"""Which callback messages go out next, and what their attempts say about each endpoint: the
delivery claim's policy, carried out over ``storage.outbox`` and the breakers kept in
``storage.callback_configs``. The worker calls both inside its own transactions.

Claiming shares the worker's free delivery slots across the accounts with due messages
(``m2m.fairness``): each account gets an equal part, never more than its in-flight allowance
(``M2M_CALLBACK_ACCOUNT_CONCURRENCY`` minus what it already has in flight on this worker), what
one cannot use goes to the others, and the order rotates from claim to claim. So one account's
hanging receiver can hold at most its allowance of slots, and the next account's message is
claimed as soon as it is due. An account whose breaker is open gets nothing; one whose breaker
cool-down has ended gets one message, the probe, if it wins the probe slot.

An event subscription is an endpoint of its own, with its own breaker in its row: its messages
share the account's fair share and in-flight allowance with the status messages, but an open
breaker of one subscription holds only that subscription's messages (parked until its cool-down
ends; then one probe). An open breaker of the account's callback URL still holds all of the
account's messages, events included (the claim skips the account).

Recording judges each attempt (``breaker.healthy``, set by the sender) against the current URL
of its account and moves the breaker (``breaker.judged``); a breaker that closes makes the
account's waiting messages due at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from m2m.callbacks.breaker import BreakerPolicy, Judged, Slot, judged, slot
from m2m.fairness import interleave, rotated, shares, top_up
from m2m.storage import callback_configs, outbox
from m2m.storage import event_subscriptions as subscription_store
from m2m.storage.callback_configs import BreakerState

log = logging.getLogger("m2m.callbacks")


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    account_limit: int  # an account's messages in flight on one worker, at most
    breaker: BreakerPolicy


@dataclass(frozen=True, slots=True)
class DeliveryClaim:
    deliveries: list[outbox.DueDelivery]
    more_due: bool  # an account had at least as many due messages as it was given
    first_account: int | None  # served first this time: the next claim starts after it
    # Accounts whose breaker was closed without a failure at this claim: healthy answers from
    # them change nothing, and the next round records them without reading the breaker.
    untroubled: frozenset[int] = frozenset()


def claim(
    conn: Connection,
    claim_id: str,
    now: datetime,
    lease_until: datetime,
    free: int,
    in_flight: Mapping[int, int],
    policy: DeliveryPolicy,
    first_after: int | None = None,
) -> DeliveryClaim:
    """Lease up to ``free`` due messages, shared fairly across accounts (see the module)."""
    if free <= 0:
        return DeliveryClaim([], False, first_after)
    pending = {account.account_id: account.breaker for account in outbox.pending_accounts(conn)}
    if not pending:
        return DeliveryClaim([], False, first_after)
    untroubled = frozenset(a for a, state in pending.items() if state == BreakerState())
    order = rotated(sorted(pending), first_after)
    slots = {account_id: slot(pending[account_id], now) for account_id in order}
    allowances: list[int | None] = []
    for account_id in order:
        room = max(policy.account_limit - in_flight.get(account_id, 0), 0)
        if slots[account_id] is Slot.OPEN:
            room = 0
        elif slots[account_id] is Slot.PROBE:
            room = min(room, 1)
        allowances.append(room)
    quotas = shares(free, allowances)
    heads = outbox.due_messages(conn, now, dict(zip(order, quotas, strict=True)))
    got = [len(heads.get(account_id, [])) for account_id in order]
    filled = [count >= quota > 0 for count, quota in zip(got, quotas, strict=True)]
    topped = top_up(free, got, filled, allowances)
    if topped is not None:
        # Read the accounts that may have more again, up to their larger quotas.
        again = {
            account_id: quota
            for account_id, quota, count in zip(order, topped, got, strict=True)
            if quota > count
        }
        heads.update(outbox.due_messages(conn, now, again))
        quotas = topped
        got = [len(heads.get(account_id, [])) for account_id in order]
    for account_id, due in heads.items():
        if any(delivery.subscription_id is not None for delivery in due):
            heads[account_id] = _endpoints_allowed(conn, due, now, lease_until)
    for account_id in order:
        if slots[account_id] is Slot.PROBE and heads.get(account_id):
            probe = heads[account_id][0]
            if probe.subscription_id is not None:
                # An event goes to another endpoint: it cannot tell whether the callback URL
                # is back. It goes out alone; the probe waits for a status message at the head.
                heads[account_id] = [probe]
                continue
            won = callback_configs.take_probe(conn, account_id, probe.id, now, lease_until)
            heads[account_id] = [probe] if won else []
            if won:
                log.info("callbacks of account %s: probing the receiver (%s)", account_id, probe.id)
    picked = interleave([heads.get(account_id, []) for account_id in order])[:free]
    # More are probably due when an account filled its quota, or was not read at all because
    # it already has its allowance in flight (the worker then claims again as soon as some of
    # its attempts finish, instead of waiting for the next round).
    at_allowance = any(
        slots[account_id] is Slot.CLOSED and allowance == 0
        for account_id, allowance in zip(order, allowances, strict=True)
    )
    return DeliveryClaim(
        deliveries=outbox.lease_deliveries(conn, claim_id, picked, now, lease_until),
        more_due=at_allowance
        or any(count >= quota > 0 for count, quota in zip(got, quotas, strict=True)),
        first_account=order[0],
        untroubled=untroubled,
    )


def record(
    conn: Connection,
    finished: Sequence[tuple[str, outbox.AttemptRecord]],
    now: datetime,
    policy: DeliveryPolicy,
    untroubled: frozenset[int] = frozenset(),
) -> None:
    """Record finished attempts (each under the claim it was made with) and move the breakers
    of the URLs they were sent to. Healthy answers from an ``untroubled`` account (as the last
    claim saw its breaker) are recorded without reading it: they would change nothing, unless
    another worker saw failures since, which the next unhealthy attempt here or there reads."""
    outbox.record_attempts(conn, finished)
    judgements: dict[int, list[tuple[str, str | None, bool]]] = {}
    for_subscriptions: dict[int, list[tuple[str, str | None, bool]]] = {}
    for _claim, attempt in finished:
        if attempt.endpoint_healthy is None:
            continue
        if attempt.subscription_id is not None:
            for_subscriptions.setdefault(attempt.subscription_id, []).append(
                (attempt.delivery_id, attempt.url, attempt.endpoint_healthy)
            )
        else:
            judgements.setdefault(attempt.account_id, []).append(
                (attempt.delivery_id, attempt.url, attempt.endpoint_healthy)
            )
    if for_subscriptions:
        _record_subscriptions(conn, for_subscriptions, now, policy)
    for account_id in untroubled & judgements.keys():
        if all(ok for _, _, ok in judgements[account_id]):
            del judgements[account_id]
    if not judgements:
        return
    # Most rounds change no breaker (healthy answers to a closed one): those read the states
    # without a lock, so that workers recording for one account do not queue on its row. A
    # round that changes one reads it again locked, and judges against what it holds then.
    changing = [
        account_id
        for account_id, (url, before) in callback_configs.breakers(conn, list(judgements)).items()
        if _judge(before, url, judgements[account_id], now, policy).state != before
    ]
    if not changing:
        return
    locked = callback_configs.breakers(conn, changing, lock=True)
    for account_id, (url, before) in locked.items():
        after = _judge(before, url, judgements[account_id], now, policy)
        if after.state != before:
            callback_configs.save_breaker(conn, account_id, after.state)
        if after.opened:
            log.warning(
                "callbacks of account %s: %d unhealthy attempts in a row; waiting until %s",
                account_id,
                after.state.failures,
                after.state.open_until,
            )
        if after.closed:
            log.info("callbacks of account %s: the receiver answers again", account_id)
            outbox.make_deliveries_due(conn, account_id, now)


def _record_subscriptions(
    conn: Connection,
    judgements: Mapping[int, Sequence[tuple[str, str | None, bool]]],
    now: datetime,
    policy: DeliveryPolicy,
) -> None:
    """The subscriptions' breakers after their attempts: each subscription is an endpoint of its
    own, so a dead receiver stops only its own messages. One that opens has its waiting messages
    parked until the cool-down ends (claims do not read past them); one that closes has them
    made due."""
    changing = [
        subscription_id
        for subscription_id, endpoint in subscription_store.endpoints(
            conn, list(judgements)
        ).items()
        if _judge(endpoint.breaker, endpoint.url, judgements[subscription_id], now, policy).state
        != endpoint.breaker
    ]
    if not changing:
        return
    for subscription_id, endpoint in subscription_store.endpoints(
        conn, changing, lock=True
    ).items():
        after = _judge(endpoint.breaker, endpoint.url, judgements[subscription_id], now, policy)
        if after.state == endpoint.breaker:
            continue
        subscription_store.save_breaker(conn, subscription_id, after.state)
        if after.opened and after.state.open_until is not None:
            log.warning(
                "events of subscription %s: %d unhealthy attempts in a row; waiting until %s",
                endpoint.public_id,
                after.state.failures,
                after.state.open_until,
            )
            subscription_store.park(conn, subscription_id, after.state.open_until)
        if after.closed:
            log.info("events of subscription %s: the receiver answers again", endpoint.public_id)
            subscription_store.make_due(conn, subscription_id, now)


def _endpoints_allowed(
    conn: Connection,
    heads: list[outbox.DueDelivery],
    now: datetime,
    lease_until: datetime,
) -> list[outbox.DueDelivery]:
    """An account's due messages without those whose subscription's breaker is open; of a
    subscription whose cool-down has ended, only the probe (if this worker wins it; the others
    wait out the probe's lease)."""
    kept: list[outbox.DueDelivery] = []
    probing: dict[int, bool] = {}
    for delivery in heads:
        if delivery.subscription_id is None or delivery.breaker is None:
            kept.append(delivery)
            continue
        state = slot(delivery.breaker, now)
        if state is Slot.CLOSED:
            kept.append(delivery)
        elif state is Slot.PROBE and delivery.subscription_id not in probing:
            won = subscription_store.take_probe(
                conn, delivery.subscription_id, delivery.id, now, lease_until
            )
            probing[delivery.subscription_id] = won
            if won:
                log.info(
                    "events of subscription %s: probing the receiver (%s)",
                    delivery.subscription_public_id,
                    delivery.id,
                )
                subscription_store.park(
                    conn, delivery.subscription_id, lease_until, keep=delivery.id
                )
                kept.append(delivery)
    return kept


def _judge(
    before: BreakerState,
    url: str | None,
    attempts: Sequence[tuple[str, str | None, bool]],
    now: datetime,
    policy: DeliveryPolicy,
) -> Judged:
    # An attempt to a URL the account has since replaced says nothing about the new one.
    outcomes = [(delivery_id, ok) for delivery_id, sent_to, ok in attempts if sent_to == url]
    return judged(before, outcomes, now, policy.breaker)
