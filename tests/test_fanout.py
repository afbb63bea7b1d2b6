"""The fan-out (``callbacks.fanout``) on both databases: each enabled subscription gets one
message per wanted event, once (the cursor moves past everything read); a paused one is not
read; a cursor pointing at purged events reads on from the next kept event. And the pure
matching of types and labels (``events.subscribed``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, insert, select, update

from m2m.callbacks import dispatch
from m2m.callbacks.breaker import BreakerPolicy
from m2m.callbacks.dispatch import DeliveryPolicy
from m2m.callbacks.fanout import STATUS_MESSAGES_FIRST_FOR, events_wait, fan_out
from m2m.clock import ManualClock
from m2m.events import selected_types, subscribed
from m2m.lifecycle import Operation
from m2m.storage import callback_configs, retention
from m2m.storage import event_subscriptions as subscription_store
from m2m.storage import events as event_store
from m2m.storage.callback_configs import BreakerState
from m2m.storage.engine import write_transaction
from m2m.storage.tables import callback_deliveries, request_items
from tests.support.intake import accept
from tests.support.sims import add_active_sims
from tests.support.tenants import Tenant


def test_matching_types_and_labels() -> None:
    sims = selected_types(["sim.*"])
    assert subscribed(sims, {}, "sim.updated", None)
    assert not subscribed(sims, {}, "request.completed", None)
    assert subscribed(None, {}, "request.completed", None)
    assert subscribed(None, {"site": "gent"}, "sim.updated", {"site": "gent", "x": "y"})
    assert not subscribed(None, {"site": "gent"}, "sim.updated", {"site": "antwerp"})
    assert not subscribed(None, {"site": "gent"}, "request.completed", None)


def _record(engine: Engine, clock: ManualClock, account_id: int, *types: str) -> None:
    with write_transaction(engine) as conn:
        event_store.record(
            conn,
            [event_store.NewEvent(account_id, t, 1, clock.now(), {}) for t in types],
        )


def _subscribe(engine: Engine, clock: ManualClock, account_id: int, *types: str, **kw: str) -> int:
    with write_transaction(engine) as conn:
        return subscription_store.create(
            conn,
            account_id,
            url="http://127.0.0.1:9/x",
            headers={},
            event_types=list(types),
            label_filter={},
            now=clock.now(),
            **kw,
        ).id


def _queued(engine: Engine, subscription_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(callback_deliveries.c.subscription_id == subscription_id)
            ).scalar_one()
        )


def test_each_subscription_gets_its_events_once(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    sims = _subscribe(engine, clock, tenant.account_id, "sim.*")
    everything = _subscribe(engine, clock, tenant.account_id, "*")
    paused = _subscribe(engine, clock, tenant.account_id, "*", status="paused")
    _record(engine, clock, tenant.account_id, "sim.updated", "request.completed", "sim.updated")
    with write_transaction(engine) as conn:
        assert fan_out(conn, clock.now()).queued == 5
    with write_transaction(engine) as conn:
        assert fan_out(conn, clock.now()).queued == 0  # the cursors moved on
    assert (_queued(engine, sims), _queued(engine, everything), _queued(engine, paused)) == (
        2,
        3,
        0,
    )


def test_a_batch_at_a_time_says_more_is_waiting(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    subscription = _subscribe(engine, clock, tenant.account_id, "*")
    _record(engine, clock, tenant.account_id, *["sim.updated"] * 5)
    with write_transaction(engine) as conn:
        first = fan_out(conn, clock.now(), batch=3)
    assert (first.queued, first.more) == (3, True)
    with write_transaction(engine) as conn:
        assert fan_out(conn, clock.now(), batch=3).queued == 2
    assert _queued(engine, subscription) == 5


def test_a_cursor_on_purged_events_reads_on_from_the_next_kept_one(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    subscription = _subscribe(engine, clock, tenant.account_id, "*", status="paused")
    _record(engine, clock, tenant.account_id, "sim.updated", "sim.updated")
    clock.advance(60)
    with write_transaction(engine) as conn:
        assert retention.purge_events(conn, clock.now(), 100) == 2
        subscription_store.update_subscription(
            conn, tenant.account_id, _public_id(engine, tenant), {"status": "enabled"}, clock.now()
        )
    _record(engine, clock, tenant.account_id, "request.completed")
    with write_transaction(engine) as conn:
        assert fan_out(conn, clock.now()).queued == 1
    assert _queued(engine, subscription) == 1


def _public_id(engine: Engine, tenant: Tenant) -> str:
    with engine.connect() as conn:
        [only] = subscription_store.list_for_account(conn, tenant.account_id)
    return only.public_id


def test_the_purge_deletes_settled_messages_of_subscriptions_not_pending_ones(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    subscription = _subscribe(engine, clock, tenant.account_id, "*")
    _record(engine, clock, tenant.account_id, "sim.updated", "sim.updated")
    with write_transaction(engine) as conn:
        fan_out(conn, clock.now())
        [first, _second] = conn.execute(
            select(callback_deliveries.c.id).order_by(callback_deliveries.c.event_id)
        ).scalars()
        conn.execute(
            update(callback_deliveries)
            .where(callback_deliveries.c.id == first)
            .values(status="delivered")
        )
    clock.advance(60)
    with write_transaction(engine) as conn:
        assert retention.purge_event_messages(conn, clock.now(), 100) == 1
    assert _queued(engine, subscription) == 1


def test_an_event_is_not_taken_as_the_probe_of_the_callback_url(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """While the account's callback URL waits for its probe, an event at the head of the
    account's messages goes out on its own (its endpoint is another), and does not become the
    callback breaker's probe (it could never close it)."""
    _subscribe(engine, clock, tenant.account_id, "*")
    _record(engine, clock, tenant.account_id, "sim.updated")
    with write_transaction(engine) as conn:
        callback_configs.set_callback_config(
            conn, tenant.account_id, "http://127.0.0.1:9/cb", {}, clock.now()
        )
        callback_configs.save_breaker(
            conn, tenant.account_id, BreakerState(5, 1, clock.now(), None)
        )
        fan_out(conn, clock.now())
    policy = DeliveryPolicy(8, BreakerPolicy(5, (10.0,), 300))
    with write_transaction(engine) as conn:
        claimed = dispatch.claim(
            conn, "claim", clock.now(), clock.now() + timedelta(seconds=30), 8, {}, policy
        )
    assert [d.subscription_id is not None for d in claimed.deliveries] == [True]
    with engine.connect() as conn:
        [(_url, state)] = callback_configs.breakers(conn, [tenant.account_id]).values()
    assert state.probe_id is None


def _status_message_under_way(engine: Engine, clock: ManualClock, tenant: Tenant) -> str:
    """A status message of a real request's item, due now (as a finished item leaves it)."""
    msisdns = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id)
    accept(engine, clock, tenant.account_id, Operation.DEACTIVATION, msisdns)
    message_id = str(uuid.uuid4())
    with write_transaction(engine) as conn:
        item_id = conn.execute(select(request_items.c.id)).scalar_one()
        conn.execute(
            insert(callback_deliveries).values(
                id=message_id,
                account_id=tenant.account_id,
                item_id=item_id,
                payload={},
                next_attempt_at=clock.now(),
                created_at=clock.now(),
            )
        )
    return message_id


def test_events_wait_behind_the_account_s_due_status_messages_for_a_while(
    engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    """A bulk request's status messages go out before the events that describe the same
    changes, but an event waits at most STATUS_MESSAGES_FIRST_FOR behind them; another
    account's status messages hold nothing of this one's."""
    mine = _subscribe(engine, clock, tenant.account_id, "*")
    theirs = _subscribe(engine, clock, other_tenant.account_id, "*")
    _status_message_under_way(engine, clock, tenant)
    _record(engine, clock, tenant.account_id, "sim.updated")
    _record(engine, clock, other_tenant.account_id, "sim.updated")
    with write_transaction(engine) as conn:
        first = fan_out(conn, clock.now())
    assert (first.queued, first.more) == (1, False)  # theirs; mine waits, and says no more
    assert (_queued(engine, mine), _queued(engine, theirs)) == (0, 1)
    clock.advance(STATUS_MESSAGES_FIRST_FOR.total_seconds() - 1)
    with write_transaction(engine) as conn:
        assert fan_out(conn, clock.now()).queued == 0
    clock.advance(1)
    with write_transaction(engine) as conn:
        assert fan_out(conn, clock.now()).queued == 1
    assert _queued(engine, mine) == 1


def test_a_status_message_being_sent_holds_events_one_waiting_to_be_retried_does_not(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    subscription = _subscribe(engine, clock, tenant.account_id, "*")
    message_id = _status_message_under_way(engine, clock, tenant)
    _record(engine, clock, tenant.account_id, "sim.updated")
    with write_transaction(engine) as conn:  # leased: being sent
        conn.execute(
            update(callback_deliveries)
            .where(callback_deliveries.c.id == message_id)
            .values(next_attempt_at=clock.now() + timedelta(seconds=30), claim_id="c")
        )
        assert fan_out(conn, clock.now()).queued == 0
    with write_transaction(engine) as conn:  # its attempt failed: retried in ten minutes
        conn.execute(
            update(callback_deliveries)
            .where(callback_deliveries.c.id == message_id)
            .values(next_attempt_at=clock.now() + timedelta(minutes=10), claim_id=None)
        )
        assert fan_out(conn, clock.now()).queued == 1
    assert _queued(engine, subscription) == 1


def test_whether_events_wait() -> None:
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    assert not events_wait(None, now)
    assert events_wait(now, now)
    assert events_wait(now - STATUS_MESSAGES_FIRST_FOR + timedelta(microseconds=1), now)
    assert not events_wait(now - STATUS_MESSAGES_FIRST_FOR, now)
