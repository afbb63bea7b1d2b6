"""The worker's two claims, one at a time on both databases: items shared across accounts and
their requests (per-SIM order kept), messages shared across accounts within their in-flight
allowance and their URL's breaker (``storage.item_queue``, ``callbacks.dispatch``)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from m2m.audit import ADMIN_CLI
from m2m.callbacks import dispatch
from m2m.callbacks.breaker import BreakerPolicy
from m2m.callbacks.configuration import save_callback
from m2m.clock import ManualClock
from m2m.lifecycle import Operation
from m2m.settings import DEFAULT_RETRY_SCHEDULE
from m2m.storage import callback_configs, item_queue
from m2m.storage.engine import write_transaction
from m2m.storage.tables import callback_deliveries
from tests.support.intake import accept
from tests.support.sims import add_active_sims
from tests.support.tenants import Tenant

POLICY = dispatch.DeliveryPolicy(
    account_limit=48, breaker=BreakerPolicy(5, DEFAULT_RETRY_SCHEDULE, 300)
)


def claim_items(
    engine: Engine, clock: ManualClock, limit: int, first_after: int | None = None
) -> list[item_queue.ClaimedItem]:
    now = clock.now()
    rotation = {} if first_after is None else {"first_after": first_after}
    with write_transaction(engine) as conn:
        return item_queue.claim_items(
            conn, "test", now, now + timedelta(seconds=60), limit, **rotation
        )


def test_a_small_request_is_in_the_next_batch_whatever_another_account_has_waiting(
    engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    big = add_active_sims(engine, 900, clock.now(), account_id=tenant.account_id, first=0)
    for part in range(3):
        accept(
            engine,
            clock,
            tenant.account_id,
            Operation.DEACTIVATION,
            big[part * 300 : (part + 1) * 300],
        )
    [small] = add_active_sims(
        engine, 1, clock.now(), account_id=other_tenant.account_id, first=10_000
    )
    accept(engine, clock, other_tenant.account_id, Operation.DEACTIVATION, [small])

    batch = claim_items(engine, clock, 100)

    assert len(batch) == 100  # the batch stays full: the big account takes what the small leaves
    by_account = Counter(item.account_id for item in batch)
    assert by_account == {tenant.account_id: 99, other_tenant.account_id: 1}
    # The big account's part is shared across its three requests.
    by_request = Counter(item.request_id for item in batch if item.account_id == tenant.account_id)
    assert sorted(by_request.values()) == [33, 33, 33]


def test_accounts_take_turns_at_the_head_of_the_batch(
    engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    for n, account in enumerate([tenant, other_tenant]):
        accept(
            engine,
            clock,
            account.account_id,
            Operation.DEACTIVATION,
            add_active_sims(engine, 10, clock.now(), account_id=account.account_id, first=n * 100),
        )
    first = claim_items(engine, clock, 1)
    second = claim_items(engine, clock, 1, first_after=first[0].account_id)
    third = claim_items(engine, clock, 1, first_after=second[0].account_id)
    assert [b[0].account_id for b in (first, second, third)] == [
        tenant.account_id,
        other_tenant.account_id,
        tenant.account_id,
    ]


def test_a_later_request_on_the_same_sim_waits_for_the_earlier_one(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    sims_ = add_active_sims(engine, 3, clock.now(), account_id=tenant.account_id, first=0)
    accept(engine, clock, tenant.account_id, Operation.DEACTIVATION, sims_)
    accept(engine, clock, tenant.account_id, Operation.REACTIVATION, sims_[:1])
    accept(
        engine,
        clock,
        tenant.account_id,
        Operation.REACTIVATION,
        [
            *add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id, first=50),
            sims_[1],
        ],
    )

    batch = claim_items(engine, clock, 100)

    # Every item of the first request, and of the third the one on a SIM of its own; nothing on
    # a SIM whose earlier item is still open, though rotation would like to serve every request.
    assert Counter(item.operation for item in batch) == {"deactivation": 3, "reactivation": 1}
    assert {item.msisdn for item in batch if item.operation == "reactivation"} == {"32480000050"}
    assert claim_items(engine, clock, 100) == []  # the rest waits until those are finished


def test_a_dead_workers_items_are_taken_over_first(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    accept(
        engine,
        clock,
        tenant.account_id,
        Operation.DEACTIVATION,
        add_active_sims(engine, 5, clock.now(), account_id=tenant.account_id, first=0),
    )
    now = clock.now()
    with write_transaction(engine) as conn:
        dead = item_queue.claim_items(conn, "dead", now, now + timedelta(seconds=1), 2)
    clock.advance(2)
    batch = claim_items(engine, clock, 100)
    assert [item.id for item in batch[:2]] == [item.id for item in dead]
    assert len(batch) == 5


# --- deliveries ----------------------------------------------------------------------------------


def due_messages(
    engine: Engine, clock: ManualClock, account: Tenant, count: int, first: int
) -> None:
    """``count`` finished items of the account, each with its message due now."""
    accept(
        engine,
        clock,
        account.account_id,
        Operation.DEACTIVATION,
        add_active_sims(engine, count, clock.now(), account_id=account.account_id, first=first),
    )
    now = clock.now()
    with write_transaction(engine) as conn:
        claimed = item_queue.claim_items(conn, "w", now, now + timedelta(seconds=60), 10_000)
        item_queue.finish_items(
            conn,
            "w",
            [
                item_queue.ItemOutcome(
                    item_id=item.id,
                    request_id=item.request_id,
                    account_id=item.account_id,
                    tracking_number=item.tracking_number,
                    operation=item.operation,
                    sim_id=item.sim_id,
                    from_state=item.state,
                    new_state=None,
                    result_status="Success",
                    messages=[],
                    delivery_id=f"{item.account_id}-{item.id:08d}",
                    payload={},
                )
                for item in claimed
            ],
            now,
        )


def claim_deliveries(
    engine: Engine, clock: ManualClock, free: int, in_flight: dict[int, int] | None = None
) -> dispatch.DeliveryClaim:
    now = clock.now()
    with write_transaction(engine) as conn:
        return dispatch.claim(
            conn, "c", now, now + timedelta(seconds=30), free, in_flight or {}, POLICY
        )


def test_a_lone_account_gets_its_allowance_not_every_slot(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    due_messages(engine, clock, tenant, 100, 0)
    claim = claim_deliveries(engine, clock, 64)
    assert len(claim.deliveries) == 48
    assert claim.more_due
    # With 40 in flight it may take 8 more.
    assert len(claim_deliveries(engine, clock, 64, {tenant.account_id: 40}).deliveries) == 8


def test_an_account_at_its_allowance_leaves_the_slots_to_the_others(
    engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    due_messages(engine, clock, tenant, 100, 0)
    due_messages(engine, clock, other_tenant, 1, 1000)
    claim = claim_deliveries(engine, clock, 16, {tenant.account_id: 48})
    assert [d.account_id for d in claim.deliveries] == [other_tenant.account_id]


def test_free_slots_are_shared_between_accounts_with_due_messages(
    engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    due_messages(engine, clock, tenant, 100, 0)
    due_messages(engine, clock, other_tenant, 100, 1000)
    claim = claim_deliveries(engine, clock, 16)
    assert Counter(d.account_id for d in claim.deliveries) == {
        tenant.account_id: 8,
        other_tenant.account_id: 8,
    }


def set_breaker(engine: Engine, account_id: int, state: callback_configs.BreakerState) -> None:
    with write_transaction(engine) as conn:
        callback_configs.save_breaker(conn, account_id, state)


def test_an_open_breaker_holds_back_old_and_new_messages_then_lets_one_probe_out(
    engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    for account in (tenant, other_tenant):
        save_callback(
            engine, clock, account.account_id, "https://example.com/cb", {}, actor=ADMIN_CLI
        )
    due_messages(engine, clock, tenant, 50, 0)
    until = clock.now() + timedelta(seconds=10)
    set_breaker(engine, tenant.account_id, callback_configs.BreakerState(5, 1, until, None))
    due_messages(engine, clock, tenant, 5, 500)  # new messages while it is open
    due_messages(engine, clock, other_tenant, 3, 1000)

    assert {d.account_id for d in claim_deliveries(engine, clock, 64).deliveries} == {
        other_tenant.account_id
    }
    assert claim_deliveries(engine, clock, 64).deliveries == []

    clock.advance(10)
    [probe] = claim_deliveries(engine, clock, 64).deliveries
    assert probe.account_id == tenant.account_id
    with engine.connect() as conn:
        [(_url, state)] = callback_configs.breakers(conn, [tenant.account_id]).values()
    assert state.probe_id == probe.id
    assert state.open_until is not None
    assert state.open_until > clock.now()
    assert claim_deliveries(engine, clock, 64).deliveries == []  # one probe at a time


def test_a_new_url_closes_the_breaker(engine: Engine, clock: ManualClock, tenant: Tenant) -> None:
    save_callback(engine, clock, tenant.account_id, "https://example.com/old", {}, actor=ADMIN_CLI)
    due_messages(engine, clock, tenant, 5, 0)
    until = clock.now() + timedelta(seconds=300)
    set_breaker(engine, tenant.account_id, callback_configs.BreakerState(9, 4, until, None))
    assert claim_deliveries(engine, clock, 64).deliveries == []
    save_callback(engine, clock, tenant.account_id, "https://example.com/new", {}, actor=ADMIN_CLI)
    assert len(claim_deliveries(engine, clock, 64).deliveries) == 5


def test_messages_leased_elsewhere_are_not_claimed_twice(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    due_messages(engine, clock, tenant, 10, 0)
    first = claim_deliveries(engine, clock, 4)
    second = claim_deliveries(engine, clock, 64)
    assert len(first.deliveries) == 4
    assert len(second.deliveries) == 6
    assert not {d.id for d in first.deliveries} & {d.id for d in second.deliveries}
    with engine.connect() as conn:
        leased = conn.execute(
            select(callback_deliveries.c.claim_id).where(
                callback_deliveries.c.claim_id.is_not(None)
            )
        ).all()
    assert len(leased) == 10


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_worker_claiming_beside_another_reads_past_the_items_the_other_holds(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    # Two workers pick the same heads of one large request; the second must not come back
    # empty (and idle) while the first still holds them uncommitted: it takes the next ones.
    sims = add_active_sims(engine, 30, clock.now(), account_id=tenant.account_id, first=0)
    accept(engine, clock, tenant.account_id, Operation.DEACTIVATION, sims)
    now = clock.now()
    with write_transaction(engine) as first_conn:
        first = item_queue.claim_items(first_conn, "first", now, now + timedelta(seconds=60), 10)
        second = claim_items(engine, clock, 10)
    assert len(first) == 10
    assert len(second) == 10
    assert max(item.id for item in first) < min(item.id for item in second)
