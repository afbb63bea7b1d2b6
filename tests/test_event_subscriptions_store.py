"""The subscriptions' storage, on both databases: saving, listing, changing and deleting per
account; a new subscription starts at the end of the log; the fan-out's reads and its cursor;
replay moves the cursor back, never forward; parking a subscription's messages; the migration
keeps the outbox's rows and attempts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, select, text

from m2m.clock import ManualClock
from m2m.storage import event_subscriptions as subscription_store
from m2m.storage import events as event_store
from m2m.storage import outbox
from m2m.storage.callback_configs import BreakerState
from m2m.storage.engine import make_engine, write_transaction
from m2m.storage.migrate import upgrade
from m2m.storage.tables import callback_attempts, callback_deliveries
from tests.support.tenants import Tenant


def _record(engine: Engine, clock: ManualClock, account_id: int, count: int, **sim: str) -> None:
    snapshot = event_store.sim_snapshot("8932", "3247", dict(sim)) if sim else None
    with write_transaction(engine) as conn:
        event_store.record(
            conn,
            [
                event_store.NewEvent(
                    account_id, "sim.updated", 1, clock.now(), {"n": n}, sim=snapshot
                )
                for n in range(count)
            ],
        )


def _create(engine: Engine, clock: ManualClock, account_id: int, **extra: object) -> str:
    values: dict[str, object] = {
        "url": "http://127.0.0.1:9/x",
        "headers": {"x-a": "1"},
        "event_types": ["sim.*"],
        "label_filter": {},
    }
    values.update(extra)
    with write_transaction(engine) as conn:
        created = subscription_store.create(conn, account_id, now=clock.now(), **values)  # type: ignore[arg-type]
    return created.public_id


def test_saved_listed_changed_and_deleted_per_account(
    engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    public_id = _create(engine, clock, tenant.account_id, label_filter={"site": "gent"})
    assert public_id.startswith("sub_")
    with engine.connect() as conn:
        [listed] = subscription_store.list_for_account(conn, tenant.account_id)
        assert subscription_store.list_for_account(conn, other_tenant.account_id) == []
        assert subscription_store.get(conn, other_tenant.account_id, public_id) is None
    assert listed.label_filter == {"site": "gent"}
    assert listed.status == "enabled"
    assert listed.breaker == BreakerState()

    with write_transaction(engine) as conn:
        assert (
            subscription_store.update_subscription(
                conn, other_tenant.account_id, public_id, {"status": "paused"}, clock.now()
            )
            is None
        )
        changed = subscription_store.update_subscription(
            conn, tenant.account_id, public_id, {"status": "paused"}, clock.now()
        )
        assert changed is not None
        assert changed.status == "paused"
        assert subscription_store.bump_version(conn, tenant.account_id, public_id, clock.now()) == 2
        assert not subscription_store.delete_subscription(conn, other_tenant.account_id, public_id)
        assert subscription_store.delete_subscription(conn, tenant.account_id, public_id)
        assert subscription_store.list_for_account(conn, tenant.account_id) == []


def test_the_number_per_account_is_bounded(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    for _ in range(subscription_store.MAX_PER_ACCOUNT):
        _create(engine, clock, tenant.account_id)
    with pytest.raises(subscription_store.TooManySubscriptions):
        _create(engine, clock, tenant.account_id)


def test_a_new_subscription_starts_after_the_events_already_stored(
    engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    _record(engine, clock, tenant.account_id, 3)
    public_id = _create(engine, clock, tenant.account_id)
    with engine.connect() as conn:
        assert subscription_store.fan_out_targets(conn) == []
    _record(engine, clock, other_tenant.account_id, 2)  # another account's events: not its work
    _record(engine, clock, tenant.account_id, 2, site="gent")
    with write_transaction(engine) as conn:
        [target] = subscription_store.fan_out_targets(conn)
        found = subscription_store.events_after(
            conn, tenant.account_id, target.through_event_id, 10
        )
        assert [e.envelope["data"] for e in found] == [{"n": 0}, {"n": 1}]
        assert found[0].labels == {"site": "gent"}
        assert found[0].envelope["id"] == str(found[0].id)
        assert subscription_store.enqueue(conn, target.id, tenant.account_id, found, clock.now())
        subscription_store.advance(conn, target.id, found[-1].id)
    with engine.connect() as conn:
        assert subscription_store.fan_out_targets(conn) == []
        shown = subscription_store.recent_deliveries(conn, tenant.account_id, public_id)
        assert sorted(d.event_id for d in shown) == [e.id for e in found]
        assert subscription_store.recent_deliveries(conn, other_tenant.account_id, public_id) == []


def test_replay_moves_the_cursor_back_to_the_first_event_since_and_never_forward(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    public_id = _create(engine, clock, tenant.account_id)
    _record(engine, clock, tenant.account_id, 2)
    clock.advance(300)
    since = clock.now()
    _record(engine, clock, tenant.account_id, 2)
    with write_transaction(engine) as conn:
        ids = [e.id for e in subscription_store.events_after(conn, tenant.account_id, 0, 10)]
        subscription_store.advance(conn, _sub_id(conn, tenant, public_id), ids[-1])
        assert subscription_store.replay(conn, tenant.account_id, public_id, since, since) == (
            ids[2] - 1
        )
        later = since + timedelta(hours=1)
        assert subscription_store.replay(conn, tenant.account_id, public_id, later, later) == (
            ids[2] - 1
        )
        assert (
            subscription_store.replay(conn, tenant.account_id + 99, public_id, since, since) is None
        )


def _sub_id(conn: Connection, tenant: Tenant, public_id: str) -> int:
    found = subscription_store.get(conn, tenant.account_id, public_id)
    assert found is not None
    return found.id


def test_parked_messages_are_not_due_until_made_due(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    public_id = _create(engine, clock, tenant.account_id)
    _record(engine, clock, tenant.account_id, 3)
    now = clock.now()
    with write_transaction(engine) as conn:
        sub_id = _sub_id(conn, tenant, public_id)
        found = subscription_store.events_after(conn, tenant.account_id, 0, 10)
        subscription_store.enqueue(conn, sub_id, tenant.account_id, found, now)
        assert subscription_store.park(conn, sub_id, now + timedelta(minutes=1)) == 3
        due = conn.execute(
            select(callback_deliveries.c.id).where(callback_deliveries.c.next_attempt_at <= now)
        ).all()
        assert due == []
        assert subscription_store.make_due(conn, sub_id, now) == 3


def test_the_migration_keeps_messages_and_their_attempts(tmp_path: Path) -> None:
    """SQLite rebuilds the outbox table: its rows and their attempts survive."""
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine, "0010")
    with write_transaction(engine) as conn:
        conn.execute(
            text(
                "INSERT INTO accounts (id, name, subscription, is_sandbox, created_at)"
                " VALUES (1, 'a', 'active', 0, '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO lifecycle_requests (id, tracking_number, account_id, operation,"
                " callback_token, item_count, accepted_at)"
                " VALUES (1, 't', 1, 'activation', 'x', 1, '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO request_items (id, request_id, identifier, identifier_type)"
                " VALUES (1, 1, '3247', 'MSISDN')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO callback_deliveries (id, account_id, item_id, payload,"
                " next_attempt_at, created_at)"
                " VALUES ('d1', 1, 1, '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO callback_attempts (delivery_id, attempted_at, status_code)"
                " VALUES ('d1', '2026-01-01 00:00:00', 200)"
            )
        )
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(
            select(callback_deliveries.c.id, callback_deliveries.c.item_id)
        ).all() == [("d1", 1)]
        assert conn.execute(select(callback_attempts.c.status_code)).scalars().all() == [200]
        assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    engine.dispose()


def test_an_attempt_on_a_message_deleted_with_its_subscription_records_nothing(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """Deleting a subscription while its message is in flight must not break the worker's
    recording of that round (the attempt's message is gone, with its foreign key)."""
    public_id = _create(engine, clock, tenant.account_id)
    _record(engine, clock, tenant.account_id, 2)
    with write_transaction(engine) as conn:
        sub_id = _sub_id(conn, tenant, public_id)
        found = subscription_store.events_after(conn, tenant.account_id, 0, 10)
        subscription_store.enqueue(conn, sub_id, tenant.account_id, found, clock.now())
        ids = list(conn.execute(select(callback_deliveries.c.id)).scalars())
    with write_transaction(engine) as conn:
        subscription_store.delete_subscription(conn, tenant.account_id, public_id)
    attempts = [
        (
            "claim",
            outbox.AttemptRecord(
                delivery_id=delivery_id,
                account_id=tenant.account_id,
                attempted_at=clock.now(),
                url="http://127.0.0.1:9/x",
                status_code=200,
                error=None,
                latency_ms=1,
                delivered=True,
                next_attempt_at=None,
                endpoint_healthy=True,
                subscription_id=sub_id,
            ),
        )
        for delivery_id in ids
    ]
    with write_transaction(engine) as conn:
        outbox.record_attempts(conn, attempts)
    with engine.connect() as conn:
        assert conn.execute(select(callback_attempts.c.id)).all() == []
