"""The usage policy's reactivation at the next period, on both databases: a SIM the policy
deactivated is reactivated by the worker through a lifecycle request (TrackingNumber, status
message, audit entry by "usage policy") once its account's day or month has ended, if the
account asks for it, exactly once, and only if it is still Deactivated."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

from m2m import accounts
from m2m.asgi import create_app
from m2m.audit import ADMIN_CLI, Actor, ActorKind
from m2m.clock import ManualClock
from m2m.identifiers import IdentifierType
from m2m.intake import Device, accept_request
from m2m.lifecycle import Operation
from m2m.settings import Settings
from m2m.storage import callback_configs
from m2m.storage.engine import write_transaction
from m2m.storage.tables import (
    audit_events,
    events,
    sim_cards,
    usage_daily,
    usage_deactivations,
)
from m2m.usage import Period
from m2m.usage_policy import reactivate_due
from m2m.usage_reactivation import period_end, should_reactivate
from m2m.worker_setup import worker_parts
from tests.support.receiver import Receiver
from tests.support.sims import change_sim
from tests.support.tenants import Tenant
from tests.support.usage_policy import (
    DAILY_SMS_LIMIT,
    move_to,
    post,
    requests,
    set_policy,
    sim_over_its_limit,
    state_of,
)
from tests.support.waiting import wait_for
from tests.support.worker import drain

NEW_YORK = ZoneInfo("America/New_York")
CUSTOMER = Actor(ActorKind.APPLICATION, "customer-app")

# --- when a SIM is due back (pure) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "start", "zone", "ends"),
    [
        # New York's midnight is 05:00 UTC in winter, 04:00 in summer; the day clocks move.
        (Period.DAILY, date(2026, 1, 10), "America/New_York", datetime(2026, 1, 11, 5, tzinfo=UTC)),
        (Period.DAILY, date(2026, 3, 8), "America/New_York", datetime(2026, 3, 9, 4, tzinfo=UTC)),
        # Santiago skips its midnight (00:00 -> 01:00): the day begins when the clocks jump.
        (Period.DAILY, date(2026, 9, 5), "America/Santiago", datetime(2026, 9, 6, 4, tzinfo=UTC)),
        # A month ends at the next month's first midnight, a year's end too.
        (Period.MONTHLY, date(2026, 1, 1), "UTC", datetime(2026, 2, 1, tzinfo=UTC)),
        (Period.MONTHLY, date(2026, 12, 1), "Asia/Tokyo", datetime(2026, 12, 31, 15, tzinfo=UTC)),
    ],
)
def test_a_period_ends_at_the_next_ones_first_midnight_in_the_accounts_zone(
    period: Period, start: date, zone: str, ends: datetime
) -> None:
    end = period_end(period, start, ZoneInfo(zone))
    assert end == ends
    # The usage of the second before still counts in the period; of the end, in the next one.
    assert (end - timedelta(seconds=1)).astimezone(ZoneInfo(zone)).date() < (
        end.astimezone(ZoneInfo(zone)).date()
    )


@pytest.mark.parametrize(
    ("state", "wanted", "reactivated"),
    [
        ("Deactivated", True, True),
        ("Deactivated", False, False),  # the account no longer asks
        ("Active", True, False),  # someone reactivated it meanwhile
        ("Terminated", True, False),
        (None, True, False),  # gone
    ],
)
def test_only_a_sim_still_deactivated_of_an_account_that_asks_is_reactivated(
    state: str | None, wanted: bool, reactivated: bool
) -> None:
    assert should_reactivate(state, wanted) is reactivated
    # Whatever else holds, a SIM someone else changed since the policy did stays as it is.
    assert should_reactivate(state, wanted, policy_changed_it_last=False) is False


# --- the worker's step, on both databases --------------------------------------------------------


def new_york(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=NEW_YORK)


def a_day_ahead(clock: ManualClock, day: int = 10) -> date:
    """The ``day``-th of next month: ahead of the clock (which only moves forward), and not a
    month's last day (so that the next day is in the same month)."""
    today = clock.now().date()
    return (today.replace(day=1) + timedelta(days=32)).replace(day=day)


def deactivated_at_ten(
    settings: Settings,
    engine: Engine,
    clock: ManualClock,
    tenant: Tenant,
    *,
    reactivate: bool = True,
    profile: dict[str, object] | None = None,
    first: int = 0,
) -> tuple[date, str, str, str]:
    """A SIM of the tenant (New York, the deactivate policy) over its limit at 10:00 on a day
    ahead, deactivated by the worker: (that day, ICCID, MSISDN, the deactivation's number)."""
    zone = "America/New_York"
    set_policy(engine, clock, tenant.account_id, reactivate=reactivate, time_zone=zone)
    day = a_day_ahead(clock)
    move_to(clock, new_york(day, 10))
    iccid, msisdn = sim_over_its_limit(engine, clock, tenant, profile, first=first)
    [deactivation] = post(engine, clock, iccid, f"b-{iccid}")
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Deactivated"
    return day, iccid, msisdn, deactivation


def by_the_customer(
    settings: Settings,
    engine: Engine,
    clock: ManualClock,
    tenant: Tenant,
    operation: Operation,
    iccid: str,
) -> None:
    """The customer's own ``operation`` on the SIM, run by the worker."""
    accept_request(
        engine,
        clock,
        tenant.account_id,
        operation,
        [Device(iccid, IdentifierType.ICCID)],
        "customer-token",
        actor=CUSTOMER,
    )
    drain(settings, engine, clock)


def step(engine: Engine, clock: ManualClock) -> tuple[int, list[str]]:
    with write_transaction(engine) as conn:
        return reactivate_due(conn, clock)


def rows(engine: Engine) -> list[tuple[object, ...]]:
    d = usage_deactivations
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                select(
                    d.c.period,
                    d.c.period_ends_at,
                    d.c.deactivation_tracking_number,
                    d.c.closed_at.is_not(None),
                    d.c.reactivation_tracking_number,
                ).order_by(d.c.id)
            )
        ]


def test_a_sim_off_for_its_day_is_back_at_the_accounts_midnight_through_a_request(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant, receiver: Receiver
) -> None:
    with write_transaction(engine) as conn:
        callback_configs.set_callback_config(conn, tenant.account_id, receiver.url, {}, clock.now())
    day, iccid, msisdn, deactivation = deactivated_at_ten(settings, engine, clock, tenant)
    midnight = new_york(day + timedelta(days=1), 0)
    assert rows(engine) == [("daily", midnight, deactivation, False, None)]

    # A second before New York's midnight (hours after UTC's): nothing.
    move_to(clock, midnight - timedelta(seconds=1))
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Deactivated"
    assert [r[0] for r in requests(engine)] == ["deactivation"]

    move_to(clock, midnight)
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Active"
    [_, (operation, reactivation, token)] = requests(engine)
    assert (operation, token) == ("reactivation", "usage-policy")
    assert rows(engine) == [("daily", midnight, deactivation, True, reactivation)]
    sent = [(r.headers["x-callback-token"], r.json()) for r in receiver.received]
    assert sent[-1] == (
        "usage-policy",
        {
            "trackingNumber": reactivation,
            "device": {"identifier": iccid, "identifierType": "ICCID"},
            "resultStatus": "Success",
            "messages": [],
        },
    )
    with engine.connect() as conn:
        actors = conn.execute(
            select(audit_events.c.actor, audit_events.c.subject).where(
                audit_events.c.action == "request.reactivation"
            )
        ).all()
    assert [tuple(a) for a in actors] == [("usage policy", reactivation)]


def test_the_step_takes_a_sim_up_once(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    day, *_ = deactivated_at_ten(settings, engine, clock, tenant)
    move_to(clock, new_york(day + timedelta(days=1), 0, 1))
    assert step(engine, clock)[0] == 1
    assert step(engine, clock) == (0, [])
    assert [r[0] for r in requests(engine)] == ["deactivation", "reactivation"]


def test_two_workers_at_once_make_one_reactivation(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant, database_url: str
) -> None:
    """The second worker looks while the first has claimed and not committed: on PostgreSQL its
    claim waits for the first's row locks and then finds the rows closed; SQLite's writers take
    turns."""
    day, *_ = deactivated_at_ten(settings, engine, clock, tenant)
    move_to(clock, new_york(day + timedelta(days=1), 0, 1))
    second: list[tuple[int, list[str]]] = []
    with write_transaction(engine) as conn:
        first = reactivate_due(conn, clock)
        other = threading.Thread(target=lambda: second.append(step(engine, clock)))
        other.start()
        if database_url.startswith("postgresql"):
            wait_for(
                lambda: waiting_on_a_lock(engine), 10, "the second claim to wait for the first"
            )
    other.join()
    assert first[0] == 1
    assert second == [(0, [])]
    assert [r[0] for r in requests(engine)] == ["deactivation", "reactivation"]


def waiting_on_a_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        ).scalar()
    return bool(waiting)


def test_two_running_workers_reactivate_once(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    day, *_ = deactivated_at_ten(settings, engine, clock, tenant)
    move_to(clock, new_york(day + timedelta(days=1), 0, 1))

    async def both() -> list[int]:
        async with (
            worker_parts(settings, engine, clock) as one,
            worker_parts(settings, engine, clock) as two,
        ):
            return list(await asyncio.gather(one.reactivate_usage(), two.reactivate_usage()))

    assert sorted(asyncio.run(both())) == [0, 1]
    assert [r[0] for r in requests(engine)] == ["deactivation", "reactivation"]


def test_a_deactivation_the_worker_executes_after_the_period_ended_is_still_undone(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """The limit is reached just before midnight and the worker is behind: its deactivation
    still waits when the period ends. The SIM is taken up once it is executed, not before (it
    would be found Active, and left off for good)."""
    set_policy(engine, clock, tenant.account_id, reactivate=True, time_zone="America/New_York")
    day = a_day_ahead(clock)
    move_to(clock, new_york(day, 23, 59, 30))
    iccid, msisdn = sim_over_its_limit(engine, clock, tenant)
    post(engine, clock, iccid, "just-before-midnight")
    move_to(clock, new_york(day + timedelta(days=1), 0, 1))
    assert step(engine, clock) == (0, [])
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Active"
    assert [r[0] for r in requests(engine)] == ["deactivation", "reactivation"]


@pytest.mark.parametrize("turned_off_later", [False, True], ids=["never-asked", "turned-off"])
def test_an_account_that_does_not_ask_keeps_its_sims_off(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant, turned_off_later: bool
) -> None:
    day, _, msisdn, _ = deactivated_at_ten(
        settings, engine, clock, tenant, reactivate=turned_off_later
    )
    if turned_off_later:
        set_policy(engine, clock, tenant.account_id, reactivate=False)
    move_to(clock, new_york(day + timedelta(days=1), 1))
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Deactivated"
    assert [r[0] for r in requests(engine)] == ["deactivation"]
    # Closed without a request: turning the setting on again does not bring back old SIMs.
    [(_, _, _, closed, reactivation)] = rows(engine)
    assert (closed, reactivation) == (True, None)


@pytest.mark.parametrize(
    ("operation", "state"),
    [(Operation.REACTIVATION, "Active"), (Operation.TERMINATION, "Terminated")],
)
def test_a_sim_someone_else_changed_meanwhile_is_left_as_it_is(
    settings: Settings,
    engine: Engine,
    clock: ManualClock,
    tenant: Tenant,
    operation: Operation,
    state: str,
) -> None:
    day, iccid, msisdn, _ = deactivated_at_ten(settings, engine, clock, tenant)
    by_the_customer(settings, engine, clock, tenant, operation, iccid)
    assert state_of(engine, msisdn) == state
    move_to(clock, new_york(day + timedelta(days=1), 1))
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == state
    assert [r[0] for r in requests(engine)] == ["deactivation", operation.value]
    [(_, _, _, closed, reactivation)] = rows(engine)
    assert (closed, reactivation) == (True, None)


def test_a_sim_off_for_its_month_is_back_at_the_months_end_not_the_days(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """Both limits reached at once: one request, and back when the later period ends."""
    both = {"SMSService": {"DailyTreshold": 5, "MonthlyTreshold": 5}}
    day, _, msisdn, _ = deactivated_at_ten(settings, engine, clock, tenant, profile=both)
    assert sorted(str(r[0]) for r in rows(engine)) == ["daily", "monthly"]
    move_to(clock, new_york(day + timedelta(days=1), 1))
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Deactivated"
    month_end = new_york((day.replace(day=1) + timedelta(days=32)).replace(day=1), 0)
    move_to(clock, month_end - timedelta(seconds=1))
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Deactivated"
    move_to(clock, month_end)
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Active"
    assert [r[0] for r in requests(engine)] == ["deactivation", "reactivation"]
    reactivation = requests(engine)[1][1]
    assert [(r[3], r[4]) for r in rows(engine)] == [(True, reactivation)] * 2


def test_a_month_reached_while_off_for_the_day_keeps_it_off_until_the_months_end(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """Off for its day, the SIM's late usage reaches its month's limit: no second request, and
    it is back only when the month ends."""
    limits = {"SMSService": {"DailyTreshold": 5, "MonthlyTreshold": 8}}
    day, iccid, msisdn, deactivation = deactivated_at_ten(
        settings, engine, clock, tenant, profile=limits
    )
    assert post(engine, clock, iccid, "late", sms=3) == []
    assert [(r[0], r[2]) for r in rows(engine)] == [
        ("daily", deactivation),
        ("monthly", deactivation),
    ]
    move_to(clock, new_york(day + timedelta(days=1), 1))
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Deactivated"
    move_to(clock, new_york((day.replace(day=1) + timedelta(days=32)).replace(day=1), 0))
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Active"


def test_a_late_record_of_the_ended_day_does_not_deactivate_again(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """The day's limit was reported once: a record of that day arriving after the SIM came
    back is counted, and reaches no mark again."""
    day, iccid, msisdn, _ = deactivated_at_ten(settings, engine, clock, tenant)
    move_to(clock, new_york(day + timedelta(days=1), 0, 5))
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Active"
    assert post(engine, clock, iccid, "late", start=new_york(day, 23, 30)) == []
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Active"
    with engine.connect() as conn:
        counted = conn.execute(select(usage_daily.c.sms_out).where(usage_daily.c.day == day))
        assert counted.scalar() == 10


def test_another_accounts_deactivations_are_left_alone(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    monthly = {"SMSService": {"MonthlyTreshold": 5}}
    day, _, other_msisdn, _ = deactivated_at_ten(
        settings, engine, clock, other_tenant, profile=monthly, first=1
    )
    accounts.set_usage_settings(
        engine,
        clock,
        tenant.account_id,
        time_zone="America/New_York",
        warning_percent=None,
        policy="deactivate",
        reactivate=True,
        actor=ADMIN_CLI,
    )
    iccid, msisdn = sim_over_its_limit(engine, clock, tenant)
    post(engine, clock, iccid, "mine")
    drain(settings, engine, clock)
    move_to(clock, new_york(day + timedelta(days=1), 1))
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Active"
    assert state_of(engine, other_msisdn) == "Deactivated"
    assert [r[0] for r in requests(engine, other_tenant.account_id)] == ["deactivation"]
    with engine.connect() as conn:
        still_open = conn.execute(
            select(usage_deactivations.c.account_id).where(
                usage_deactivations.c.closed_at.is_(None)
            )
        )
        assert still_open.scalars().all() == [other_tenant.account_id]


def test_moving_the_sandboxs_clock_a_day_brings_the_sim_back_with_its_callback(
    settings: Settings, engine: Engine, clock: ManualClock, seeded: None, receiver: Receiver
) -> None:
    """An integrator trying the policy out: the served sandbox's worker follows its clock."""
    served = settings.model_copy(update={"sandbox_control_from_anywhere": True})
    with engine.connect() as conn:
        account_id, msisdn, iccid = conn.execute(
            select(sim_cards.c.account_id, sim_cards.c.msisdn, sim_cards.c.iccid)
            .where(sim_cards.c.state == "Active")
            .order_by(sim_cards.c.id)
            .limit(1)
        ).one()
    with write_transaction(engine) as conn:
        callback_configs.set_callback_config(conn, account_id, receiver.url, {}, clock.now())
    set_policy(engine, clock, account_id, reactivate=True)
    change_sim(engine, msisdn, clock.now(), profile=DAILY_SMS_LIMIT)

    def results() -> list[tuple[str, str]]:
        return [(m["trackingNumber"], m["resultStatus"]) for m in receiver.messages()]

    with TestClient(create_app(served, engine=engine, clock=clock)) as client:
        [deactivation] = post(engine, clock, iccid, "sandbox")
        wait_for(lambda: results() == [(deactivation, "Success")], 30, "the deactivation")
        assert state_of(engine, msisdn) == "Deactivated"
        moved = client.post("/sandbox/clock", json={"advance": "1d"})
        assert moved.status_code == 200, moved.text
        wait_for(lambda: len(results()) == 2, 30, "the reactivation's status message")
    [_, (operation, reactivation, _)] = requests(engine, account_id)
    assert operation == "reactivation"
    assert results()[1] == (reactivation, "Success")
    assert state_of(engine, msisdn) == "Active"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_step_with_nothing_due_takes_no_write_lock(
    settings: Settings, engine: Engine, clock: ManualClock
) -> None:
    """SQLite has one write lock for the database: a step that finds nothing due leaves it to
    the API's writes (it took it every minute before, and waited for it behind a long import)."""

    async def one_step() -> int:
        async with worker_parts(settings, engine, clock) as worker:
            return await worker.reactivate_usage()

    with write_transaction(engine):  # another writer, holding the lock
        assert asyncio.run(one_step()) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sim_off_for_its_month_past_its_day_s_end_takes_no_write_lock(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """Its day's row has ended but its month's still runs: nothing is due, every minute of the
    rest of the month."""
    both = {"SMSService": {"DailyTreshold": 5, "MonthlyTreshold": 5}}
    day, _, _, _ = deactivated_at_ten(settings, engine, clock, tenant, profile=both)
    move_to(clock, new_york(day + timedelta(days=1), 1))

    async def one_step() -> int:
        async with worker_parts(settings, engine, clock) as worker:
            return await worker.reactivate_usage()

    with write_transaction(engine):  # another writer, holding the lock
        assert asyncio.run(one_step()) == 0


def test_a_sim_the_customer_turned_on_and_off_again_stays_off(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """Deactivated by the policy, reactivated by the customer, then deactivated again by the
    customer (a stolen device): at the period's end it is Deactivated, as the policy left it,
    but the policy is no longer the last to have changed it, so it stays off."""
    day, iccid, msisdn, _ = deactivated_at_ten(settings, engine, clock, tenant)
    for operation in (Operation.REACTIVATION, Operation.DEACTIVATION):
        by_the_customer(settings, engine, clock, tenant, operation, iccid)
    assert state_of(engine, msisdn) == "Deactivated"
    move_to(clock, new_york(day + timedelta(days=1), 1))
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Deactivated"
    assert [r[0] for r in requests(engine)] == ["deactivation", "reactivation", "deactivation"]
    [(_, _, _, closed, reactivation)] = rows(engine)
    assert (closed, reactivation) == (True, None)


def test_a_limit_reached_again_before_the_worker_ran_makes_no_second_request(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """The day's deactivation is still waiting (the SIM still reads Active) when the month's
    limit is reached: no second request (its item would only fail); the month is recorded
    under the first, so the SIM is back at the month's end."""
    both = {"SMSService": {"DailyTreshold": 5, "MonthlyTreshold": 8}}
    set_policy(engine, clock, tenant.account_id, reactivate=True, time_zone="America/New_York")
    day = a_day_ahead(clock)
    move_to(clock, new_york(day, 10))
    iccid, msisdn = sim_over_its_limit(engine, clock, tenant, both)
    [first] = post(engine, clock, iccid, "day")
    assert post(engine, clock, iccid, "month", sms=3) == []  # the worker has not run
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Deactivated"
    assert [r[0] for r in requests(engine)] == ["deactivation"]
    assert sorted((str(r[0]), r[2]) for r in rows(engine)) == [
        ("daily", first),
        ("monthly", first),
    ]


def test_a_limit_reached_while_the_reactivation_waits_deactivates_it_again(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """The day is over and the worker has queued the SIM's reactivation (it still reads
    Deactivated) when a late record takes its month over the limit: a deactivation follows the
    reactivation, and the SIM ends off for the month (it stayed Active all month before)."""
    profile = {"SMSService": {"DailyTreshold": 5, "MonthlyTreshold": 8}}
    day, iccid, msisdn, _ = deactivated_at_ten(settings, engine, clock, tenant, profile=profile)
    # The month is not reached yet: 5 of 8.
    assert sorted(str(r[0]) for r in rows(engine)) == ["daily"]
    move_to(clock, new_york(day + timedelta(days=1), 1))
    taken, [reactivation] = step(engine, clock)  # queued, not run
    assert taken == 1
    assert state_of(engine, msisdn) == "Deactivated"
    [again] = post(engine, clock, iccid, "late", sms=3, start=new_york(day, 23))
    drain(settings, engine, clock)
    assert state_of(engine, msisdn) == "Deactivated"
    assert [r[1] for r in requests(engine)][-2:] == [reactivation, again]
    assert [(str(r[0]), r[2], r[3]) for r in rows(engine)][-1] == ("monthly", again, False)


@pytest.mark.parametrize("reactivate", [True, False], ids=["back-at-the-end", "stays-off"])
def test_a_limit_reached_late_for_an_ended_day(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant, reactivate: bool
) -> None:
    """Yesterday's records arrive after midnight and reach yesterday's limit: an account that
    has its SIMs back at the period's end gains nothing from a deactivation for a day already
    over (off for a minute, two requests): none is made; one that keeps them off gets it."""
    set_policy(
        engine, clock, tenant.account_id, reactivate=reactivate, time_zone="America/New_York"
    )
    day = a_day_ahead(clock)
    move_to(clock, new_york(day + timedelta(days=1), 0, 30))
    iccid, msisdn = sim_over_its_limit(engine, clock, tenant)
    made = post(engine, clock, iccid, "yesterday", start=new_york(day, 23))
    drain(settings, engine, clock)
    with engine.connect() as conn:
        limit_events = conn.execute(
            select(events.c.id).where(events.c.type == "usage.limit_exceeded")
        ).all()
    assert len(limit_events) == 1  # reported either way
    if reactivate:
        assert (made, state_of(engine, msisdn)) == ([], "Active")
    else:
        assert (len(made), state_of(engine, msisdn)) == (1, "Deactivated")
