"""The event log's writers and its storage, on both databases: the worker stores exactly one
``sim.state_changed`` per state change and one ``request.completed`` per finished request, in the
transaction that records them (a rolled-back change leaves no event); reading by cursor, per
SIM and by type; the purge. The console's requests write theirs the same way, and each SIM's
events follow its changes however requests interleave."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy import event as sa_event
from sqlalchemy.exc import IntegrityError

from m2m.clock import ManualClock
from m2m.lifecycle import Operation
from m2m.settings import Settings
from m2m.storage import events as event_store
from m2m.storage import item_queue, retention
from m2m.storage.engine import write_transaction
from m2m.storage.tables import callback_deliveries, events, sim_cards, sim_history
from tests.support.console import sign_in
from tests.support.events import of_type, stored_events
from tests.support.intake import accept
from tests.support.sims import add_active_sims, count
from tests.support.tenants import Tenant
from tests.support.waiting import wait_for
from tests.support.worker import drain


def _state(engine: Engine, msisdn: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(select(sim_cards.c.state).where(sim_cards.c.msisdn == msisdn)).scalar()
        )


def test_one_state_change_event_per_changed_sim_and_one_completion_per_request(
    quiet: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    msisdns = add_active_sims(engine, 3, clock.now(), account_id=tenant.account_id)
    tracking = accept(
        engine, clock, tenant.account_id, Operation.DEACTIVATION, [*msisdns, "32499999999"]
    )
    drain(quiet, engine, clock)

    found = stored_events(engine, tenant.account_id)
    changed = of_type(found, "sim.state_changed")
    assert len(changed) == 3 == count(engine, sim_history)
    assert sorted(e["sim"]["MSISDN"] for e in changed) == msisdns
    for event in changed:
        assert event["version"] == 1
        assert event["data"] == {
            "from": "Active",
            "to": "Deactivated",
            "cause": "request",
            "TrackingNumber": tracking,
            "operation": "deactivation",
        }
        assert event["sim"]["labels"] == {}
        assert event["occurred_at"] == clock.now()
    completed = of_type(found, "request.completed")
    assert len(completed) == 1
    assert completed[0]["sim_id"] is None
    assert completed[0]["sim"] is None
    assert completed[0]["data"] == {
        "TrackingNumber": tracking,
        "operation": "deactivation",
        "devices": 4,
        "results": {"Failure": 1, "Success": 3},
    }
    # The completion is stored with the request's last outcome: after every state change.
    assert completed[0]["id"] > max(e["id"] for e in changed)


def test_the_event_names_the_sim_with_its_labels(
    quiet: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    [msisdn] = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id)
    labels = {"site": "gent", "team": "ops \u00e9"}
    with write_transaction(engine) as conn:
        conn.execute(update(sim_cards).where(sim_cards.c.msisdn == msisdn).values(labels=labels))
        iccid = conn.execute(select(sim_cards.c.iccid).where(sim_cards.c.msisdn == msisdn)).scalar()
    accept(engine, clock, tenant.account_id, Operation.DEACTIVATION, [msisdn])
    drain(quiet, engine, clock)

    [event] = of_type(stored_events(engine, tenant.account_id), "sim.state_changed")
    assert event["sim"] == {"ICCID": iccid, "MSISDN": msisdn, "labels": labels}


def test_no_state_change_no_event(
    quiet: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """A request for the state a SIM already has changes nothing: its request completes, and
    no sim.state_changed is invented."""
    msisdns = add_active_sims(engine, 2, clock.now(), account_id=tenant.account_id)
    accept(engine, clock, tenant.account_id, Operation.ACTIVATION, msisdns)
    drain(quiet, engine, clock)

    found = stored_events(engine, tenant.account_id)
    assert of_type(found, "sim.state_changed") == []
    assert [e["data"]["results"] for e in of_type(found, "request.completed")] == [{"Success": 2}]


def test_events_of_one_sim_are_in_the_order_of_its_changes(
    quiet: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    [msisdn] = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id)
    for operation in (Operation.DEACTIVATION, Operation.REACTIVATION, Operation.DEACTIVATION):
        accept(engine, clock, tenant.account_id, operation, [msisdn])
    drain(quiet, engine, clock)

    changed = of_type(stored_events(engine, tenant.account_id), "sim.state_changed")
    assert [(e["data"]["from"], e["data"]["to"]) for e in changed] == [
        ("Active", "Deactivated"),
        ("Deactivated", "Active"),
        ("Active", "Deactivated"),
    ]
    assert [e["id"] for e in changed] == sorted(e["id"] for e in changed)


def test_a_console_request_writes_one_event_per_changed_sim(
    console: TestClient, engine: Engine, settings: Settings, clock: ManualClock
) -> None:
    """The console's lifecycle action is a request like the API's: one state change per SIM it
    changes (none for the SIM already in that state), one completion."""
    csrf = sign_in(console, engine, clock)
    with engine.connect() as conn:
        ids = dict(
            conn.execute(
                select(sim_cards.c.msisdn, sim_cards.c.id).where(
                    sim_cards.c.msisdn.in_(["32470000001", "32470000002", "32470000051"])
                )
            ).all()
        )
    answer = console.post(
        "/console/sims/actions",
        data={"csrf_token": csrf, "operation": "activation", "sim": [str(i) for i in ids.values()]},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    drain(settings, engine, clock)
    drain(settings, engine, clock)  # nothing more to do: nothing more is written

    found = stored_events(engine, 1)
    changed = of_type(found, "sim.state_changed")
    # 32470000001 and 2 were Active already; 51 was Ready (the sandbox's SIMs 51-100).
    assert [(e["sim"]["MSISDN"], e["data"]["from"], e["data"]["to"]) for e in changed] == [
        ("32470000051", "Ready", "Active")
    ]
    assert changed[0]["sim_id"] == ids["32470000051"]
    [completed] = of_type(found, "request.completed")
    assert completed["data"]["devices"] == 3
    assert len(found) == 2


def test_each_sim_s_events_follow_its_changes_when_requests_interleave(
    quiet: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """Requests naming several SIMs in different orders, finished in batches: each SIM's events
    come in id order as a chain (each ``from`` the previous ``to``), matching its history."""
    msisdns = add_active_sims(engine, 4, clock.now(), account_id=tenant.account_id)
    a, b, c, d = msisdns
    plan = [
        (Operation.DEACTIVATION, [a, b, c, d]),
        (Operation.REACTIVATION, [c, a]),
        (Operation.TERMINATION, [b]),
        (Operation.DEACTIVATION, [a, d, c]),
        (Operation.REACTIVATION, [d, b, a]),  # b is Terminated: a failure, no event
    ]
    for operation, devices in plan:
        accept(engine, clock, tenant.account_id, operation, devices)
    drain(quiet, engine, clock)

    changed = of_type(stored_events(engine, tenant.account_id), "sim.state_changed")
    with engine.connect() as conn:
        history = conn.execute(
            select(sim_cards.c.msisdn, sim_history.c.from_state, sim_history.c.to_state)
            .join(sim_cards, sim_cards.c.id == sim_history.c.sim_id)
            .order_by(sim_history.c.id)
        ).all()
    for msisdn in msisdns:
        mine = [e for e in changed if e["sim"]["MSISDN"] == msisdn]
        steps = [(e["data"]["from"], e["data"]["to"]) for e in mine]
        assert steps == [(f, t) for m, f, t in history if m == msisdn], msisdn
        assert all(x[1] == y[0] for x, y in itertools.pairwise(steps)), steps
        assert [e["id"] for e in mine] == sorted(e["id"] for e in mine)
    assert [e["data"]["to"] for e in changed if e["sim"]["MSISDN"] == a] == [
        "Deactivated",
        "Active",
        "Deactivated",
        "Active",
    ]
    assert [e["data"]["to"] for e in changed if e["sim"]["MSISDN"] == b] == [
        "Deactivated",
        "Terminated",
    ]
    assert len(of_type(stored_events(engine, tenant.account_id), "request.completed")) == 5


def _claim_and_outcomes(
    engine: Engine, clock: ManualClock, delivery_ids: list[str]
) -> list[item_queue.ItemOutcome]:
    now = clock.now()
    with write_transaction(engine) as conn:
        claimed = item_queue.claim_items(conn, "w", now, now + timedelta(seconds=60), 100)
    return [
        item_queue.ItemOutcome(
            item_id=item.id,
            request_id=item.request_id,
            account_id=item.account_id,
            tracking_number=item.tracking_number,
            operation=item.operation,
            sim_id=item.sim_id,
            from_state=item.state,
            new_state="Deactivated",
            result_status="Success",
            messages=[],
            delivery_id=delivery_id,
            payload={},
        )
        for item, delivery_id in zip(claimed, delivery_ids, strict=True)
    ]


def test_a_change_that_fails_after_its_events_were_written_leaves_no_event(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """finish_items writes the events before the callback messages; two messages with one id
    make the second insert fail, and the transaction takes the events down with it."""
    msisdns = add_active_sims(engine, 2, clock.now(), account_id=tenant.account_id)
    accept(engine, clock, tenant.account_id, Operation.DEACTIVATION, msisdns)
    outcomes = _claim_and_outcomes(engine, clock, ["same-id", "same-id"])

    with pytest.raises(IntegrityError), write_transaction(engine) as conn:
        item_queue.finish_items(conn, "w", outcomes, clock.now())

    assert stored_events(engine) == []
    assert count(engine, callback_deliveries) == 0
    assert [_state(engine, m) for m in msisdns] == ["Active", "Active"]

    # The same outcomes (the items are still leased to "w"), recorded properly: exactly their
    # events.
    retry = [replace(o, delivery_id=f"d{i}") for i, o in enumerate(outcomes)]
    with write_transaction(engine) as conn:
        assert item_queue.finish_items(conn, "w", retry, clock.now()) == 2
    assert len(of_type(stored_events(engine), "sim.state_changed")) == 2
    assert len(of_type(stored_events(engine), "request.completed")) == 1


def _event(
    account_id: int, event_type: str, at_days: float, clock: ManualClock, sim_id: int | None = None
) -> event_store.NewEvent:
    return event_store.NewEvent(
        account_id=account_id,
        type=event_type,
        version=1,
        occurred_at=clock.now() + timedelta(days=at_days),
        data={"n": at_days},
        sim_id=sim_id,
    )


def test_reading_by_cursor_type_and_sim(
    engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    add_active_sims(engine, 2, clock.now(), account_id=tenant.account_id)
    with engine.connect() as conn:
        sim_a, sim_b = conn.execute(select(sim_cards.c.id).order_by(sim_cards.c.id)).scalars()
    mine = tenant.account_id
    with write_transaction(engine) as conn:
        event_store.record(
            conn,
            [
                _event(mine, "sim.state_changed", 0, clock, sim_a),
                _event(other_tenant.account_id, "sim.state_changed", 0, clock),
                _event(mine, "request.completed", 1, clock),
                _event(mine, "sim.updated", 2, clock, sim_b),
                _event(mine, "sim.state_changed", 3, clock, sim_b),
            ],
        )
    with engine.connect() as conn:
        everything = event_store.read(conn, mine, after=0, limit=10)
        assert [e.data["n"] for e in everything] == [0, 1, 2, 3]
        first, second = everything[0].id, everything[1].id
        assert [e.data["n"] for e in event_store.read(conn, mine, after=first, limit=2)] == [1, 2]
        assert [
            e.data["n"]
            for e in event_store.read(
                conn, mine, after=second, limit=10, types={"sim.state_changed", "sim.updated"}
            )
        ] == [2, 3]
        assert [
            e.data["n"] for e in event_store.read(conn, mine, after=0, limit=10, sim_id=sim_b)
        ] == [2, 3]
        assert event_store.read(conn, mine, after=0, limit=10, types=frozenset()) == []
        assert event_store.read(conn, mine, after=everything[-1].id, limit=10) == []


def test_the_wire_envelope_is_the_stored_event_as_json(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """The database assembles a page's envelopes (``read_wire``): each must be the JSON of
    ``StoredEvent.envelope``, its time as ``isoformat`` writes it (no fraction at 0 µs) with Z."""
    add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id)
    with engine.connect() as conn:
        sim_id = conn.execute(select(sim_cards.c.id)).scalar_one()
    whole_second = clock.now().replace(microsecond=0)
    snapshot = event_store.sim_snapshot("8932000000000000001", "32470000001", {"site": "Gent é"})
    with write_transaction(engine) as conn:
        event_store.record(
            conn,
            [
                event_store.NewEvent(
                    tenant.account_id,
                    "sim.updated",
                    1,
                    whole_second,
                    {"fields": ["CostCenter"], "changes": {"CostCenter": {"after": 'a "q" ü'}}},
                    sim_id=sim_id,
                    sim=snapshot,
                ),
                event_store.NewEvent(
                    tenant.account_id,
                    "request.completed",
                    1,
                    whole_second + timedelta(microseconds=1_500),
                    {"devices": 2},
                ),
            ],
        )
    with engine.connect() as conn:
        wire = event_store.read_wire(conn, tenant.account_id, after=0, limit=10)
        stored = event_store.read(conn, tenant.account_id, after=0, limit=10)
    assert [event_id for event_id, _ in wire] == [e.id for e in stored]
    times = [json.loads(envelope)["occurred_at"] for _, envelope in wire]
    assert times == [
        whole_second.strftime("%Y-%m-%dT%H:%M:%SZ"),
        whole_second.strftime("%Y-%m-%dT%H:%M:%S") + ".001500Z",
    ]
    for (_, envelope), event in zip(wire, stored, strict=True):
        served = json.loads(envelope)
        assert served == {**event.envelope(), "occurred_at": served["occurred_at"]}
        assert list(served) == list(event.envelope())


def test_the_purge_deletes_old_events_only_and_cursors_read_on(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    mine = tenant.account_id
    with write_transaction(engine) as conn:
        event_store.record(
            conn, [_event(mine, "request.completed", d, clock) for d in (0, 1, 40, 41)]
        )
    with engine.connect() as conn:
        oldest = event_store.read(conn, mine, after=0, limit=1)[0].id
    with write_transaction(engine) as conn:
        assert retention.purge_events(conn, clock.now() + timedelta(days=10), limit=1) == 1
    with write_transaction(engine) as conn:
        assert retention.purge_events(conn, clock.now() + timedelta(days=10), limit=100) == 1
    assert count(engine, events) == 2
    with engine.connect() as conn:
        # A consumer whose cursor points at a purged event reads on from the oldest kept.
        assert [e.data["n"] for e in event_store.read(conn, mine, after=oldest, limit=10)] == [
            40,
            41,
        ]


# PostgreSQL only: SQLite serialises write transactions, so ids commit in order by themselves.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_accounts_events_commit_in_id_order(
    engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    """A second writer of the same account waits for the first to commit before drawing its
    ids (PostgreSQL draws ids before commit, so without the wait a reader could see the higher
    id first and skip the lower for ever); another account's writer does not wait."""
    mine = tenant.account_id
    second_done = threading.Event()

    def second_writer() -> None:
        with write_transaction(engine) as conn:
            event_store.record(conn, [_event(mine, "request.completed", 2, clock)])
        second_done.set()

    with write_transaction(engine) as first:
        event_store.record(first, [_event(mine, "request.completed", 1, clock)])
        thread = threading.Thread(target=second_writer)
        thread.start()
        wait_for(lambda: _waiting_for_advisory_locks(engine) == 1, 30, "the second writer to wait")
        # Another account's writer is not held up.
        with write_transaction(engine) as conn:
            event_store.record(
                conn, [_event(other_tenant.account_id, "request.completed", 0, clock)]
            )
        assert not second_done.is_set()
    thread.join(timeout=30)
    assert second_done.is_set()
    with engine.connect() as conn:
        found = event_store.read(conn, mine, after=0, limit=10)
    assert [e.data["n"] for e in found] == [1, 2]  # id order is commit order


def _waiting_for_advisory_locks(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            ).scalar_one()
        )


def _plan_of(conn: Connection, run: Callable[[Connection], object]) -> str:
    """SQLite's EXPLAIN QUERY PLAN of the last statement ``run`` executes."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    sa_event.listen(conn, "before_cursor_execute", capture)
    try:
        run(conn)
    finally:
        sa_event.remove(conn, "before_cursor_execute", capture)
    statement, parameters = captured[-1]
    return " ".join(
        str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
    )


# SQLite only: its planner, without statistics (nobody ran ANALYZE), is the one that chose the
# account's range; PostgreSQL plans a table of a few rows by its size, not by its indexes.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sim_s_page_reads_the_sim_s_index_without_statistics(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id)
    # Without statistics SQLite breaks the tie between the two indexes by their order in the
    # schema, which a migration, a restore or a VACUUM INTO may change: build them in the order
    # that made it pick the account's range.
    by_name = {index.name: index for index in events.indexes}
    with write_transaction(engine) as conn:
        for name in ("ix_events_sim_id_id", "ix_events_account_id_id"):
            by_name[name].drop(conn)
        for name in ("ix_events_sim_id_id", "ix_events_account_id_id"):
            by_name[name].create(conn)
    with engine.connect() as conn:
        sim_id = conn.execute(select(sim_cards.c.id)).scalar_one()
        assert (
            conn.exec_driver_sql(
                "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"
            ).scalar_one()
            == 0
        )
        pulled = _plan_of(
            conn,
            lambda c: event_store.read_wire(
                c, tenant.account_id, after=0, limit=1000, sim_id=sim_id
            ),
        )
        listed = _plan_of(
            conn,
            lambda c: event_store.newest_first(
                c,
                tenant.account_id,
                event_store.EventFilter(sim_id=sim_id),
                before_id=None,
                limit=51,
            ),
        )
        everything = _plan_of(
            conn, lambda c: event_store.read_wire(c, tenant.account_id, after=0, limit=1000)
        )
    assert "ix_events_sim_id_id" in pulled
    assert "ix_events_sim_id_id" in listed
    assert "ix_events_account_id_id" in everything
