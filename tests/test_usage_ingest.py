"""Counting usage records into the aggregates, on both databases: each batch once, all or
nothing, periods in the account's zone, and each threshold crossing raised once as an event."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from m2m.clock import ManualClock
from m2m.storage import usage as usage_store
from m2m.storage import usage_ingest
from m2m.storage.engine import write_transaction
from m2m.storage.tables import (
    accounts,
    events,
    sim_cards,
    usage_daily,
    usage_hourly,
    usage_monthly,
)
from m2m.usage import Totals
from m2m.usage_records import UsageRecord
from tests.support.sims import add_active_sims, change_sim
from tests.support.tenants import Tenant

NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def iccid_of(engine: Engine, msisdn: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(select(sim_cards.c.iccid).where(sim_cards.c.msisdn == msisdn)).scalar()
        )


def record(iccid: str, at: datetime, **counters: int) -> UsageRecord:
    return UsageRecord(
        iccid=iccid, imsi=None, started_at=at, ended_at=None, totals=Totals(**counters)
    )


def ingest(engine: Engine, batch: str, records: list[UsageRecord]) -> usage_ingest.IngestResult:
    with write_transaction(engine) as conn:
        return usage_ingest.ingest(conn, batch, records, NOON)


def usage_events(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(events.c.type, events.c.data, events.c.sim)
            .where(events.c.type.like("usage.%"))
            .order_by(events.c.id)
        )
        return [{"type": r.type, **r.data, "iccid": r.sim["ICCID"]} for r in rows]


def test_a_batch_adds_to_the_hour_day_and_month_and_counts_once(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    [msisdn] = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id)
    iccid = iccid_of(engine, msisdn)
    batch = [
        record(iccid, NOON - timedelta(minutes=50), data_up_bytes=100, sms_out=1),
        record(iccid, NOON - timedelta(minutes=10), data_down_bytes=50, voice_seconds=30),
        record(iccid, NOON + timedelta(minutes=5), data_up_bytes=7),
    ]
    assert ingest(engine, "file-1", batch).counted == 3
    again = ingest(engine, "file-1", batch)
    assert again.duplicate
    assert again.counted == 0
    with engine.connect() as conn:
        hours = conn.execute(
            select(
                usage_hourly.c.hour, usage_hourly.c.data_up_bytes, usage_hourly.c.records
            ).order_by(usage_hourly.c.hour)
        ).all()
        day = conn.execute(
            select(
                usage_daily.c.day,
                usage_daily.c.data_up_bytes,
                usage_daily.c.data_down_bytes,
                usage_daily.c.sms_out,
                usage_daily.c.voice_seconds,
            )
        ).one()
    assert [tuple(h) for h in hours] == [
        (datetime(2026, 12, 1, 11, tzinfo=UTC), 100, 2),
        (datetime(2026, 12, 1, 12, tzinfo=UTC), 7, 1),
    ]
    assert tuple(day) == (date(2026, 12, 1), 107, 50, 1, 30)
    with engine.connect() as conn:
        [(from_sql,)] = conn.execute(select(usage_daily.c.data_up_bytes)).all()
    assert from_sql == 107


def test_a_record_naming_no_sim_counts_nothing_of_its_batch(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    [msisdn] = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id)
    result = ingest(
        engine,
        "file-2",
        [record(iccid_of(engine, msisdn), NOON, sms_in=1), record("89320199999999999990", NOON)],
    )
    assert result.unknown == [1]
    assert result.counted == 0
    with engine.connect() as conn:
        assert conn.execute(select(usage_hourly)).all() == []
    # Nothing was counted, so the batch can be sent again once it is fixed.
    assert ingest(engine, "file-2", [record(iccid_of(engine, msisdn), NOON)]).counted == 1


def test_usage_of_a_sim_that_is_not_active_is_counted_and_flagged(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    [msisdn] = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id)
    change_sim(engine, msisdn, clock.now(), state="Deactivated")
    result = ingest(engine, "b", [record(iccid_of(engine, msisdn), NOON, data_up_bytes=10)])
    assert result.inactive == 1
    with engine.connect() as conn:
        row = conn.execute(select(usage_hourly.c.inactive_records, usage_hourly.c.records)).one()
    assert tuple(row) == (1, 1)


def test_thresholds_raise_each_mark_once_per_period_and_re_arm_the_next_day(
    engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    [msisdn] = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id)
    # A neighbour's SIM with the same threshold, whose usage stays low.
    [calm] = add_active_sims(engine, 1, clock.now(), account_id=other_tenant.account_id, first=1)
    profile = {"DataService": {"DailyTreshold": 10, "MonthlyTreshold": 0}}
    change_sim(engine, msisdn, clock.now(), profile=profile)
    change_sim(engine, calm, clock.now(), profile=profile)
    iccid = iccid_of(engine, msisdn)
    megabyte = 1_000_000
    ingest(engine, "1", [record(iccid, NOON, data_down_bytes=7 * megabyte)])
    assert usage_events(engine) == []
    ingest(
        engine,
        "2",
        [
            record(iccid, NOON, data_down_bytes=megabyte),
            record(iccid_of(engine, calm), NOON, data_up_bytes=megabyte),
        ],
    )
    ingest(engine, "3", [record(iccid, NOON, data_up_bytes=megabyte)])  # 9 MB: no new mark
    ingest(engine, "4", [record(iccid, NOON, data_up_bytes=5 * megabyte)])  # 14 MB
    ingest(engine, "5", [record(iccid, NOON, data_up_bytes=5 * megabyte)])  # still over
    tomorrow = NOON + timedelta(days=1)
    ingest(engine, "6", [record(iccid, tomorrow - timedelta(hours=1), data_up_bytes=20 * megabyte)])
    found = [(e["type"], e["period_start"], e["used"], e["percent"]) for e in usage_events(engine)]
    assert found == [
        ("usage.threshold_reached", "2026-12-01", 8.0, 80),
        ("usage.limit_exceeded", "2026-12-01", 14.0, 100),
        ("usage.threshold_reached", "2026-12-02", 20.0, 80),
        ("usage.limit_exceeded", "2026-12-02", 20.0, 100),
    ]
    assert {e["iccid"] for e in usage_events(engine)} == {iccid}
    assert usage_events(engine)[0]["unit"] == "MB"


def test_days_follow_the_accounts_time_zone(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            update(accounts)
            .where(accounts.c.id == tenant.account_id)
            .values(time_zone="Asia/Tokyo")
        )
    [msisdn] = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id)
    # 16:00 UTC on 1 December is 01:00 on 2 December in Tokyo.
    ingest(
        engine,
        "tz",
        [record(iccid_of(engine, msisdn), datetime(2026, 12, 1, 16, tzinfo=UTC), sms_out=1)],
    )
    with engine.connect() as conn:
        assert conn.execute(select(usage_daily.c.day)).scalar() == date(2026, 12, 2)


def test_concurrent_batches_add_up_and_raise_each_mark_once(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    [msisdn] = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id)
    change_sim(engine, msisdn, clock.now(), profile={"SMSService": {"DailyTreshold": 10}})
    iccid = iccid_of(engine, msisdn)
    ready = threading.Barrier(4)

    def post(n: int) -> None:
        ready.wait()
        # Each batch alone reaches the limit: four at once must still raise each mark once.
        ingest(engine, f"parallel-{n}", [record(iccid, NOON, sms_out=10)])

    threads = [threading.Thread(target=post, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as conn:
        assert conn.execute(select(usage_daily.c.sms_out)).scalar() == 40
    assert [e["type"] for e in usage_events(engine)] == [
        "usage.threshold_reached",
        "usage.limit_exceeded",
    ]


def _new_sims(
    engine: Engine, clock: ManualClock, tenant: Tenant, count: int, first: int = 0
) -> list[str]:
    """``count`` new Active SIMs of the tenant's, by ICCID."""
    msisdns = add_active_sims(engine, count, clock.now(), account_id=tenant.account_id, first=first)
    return [iccid_of(engine, msisdn) for msisdn in msisdns]


def _set_zone(engine: Engine, account_id: int, zone: str) -> None:
    with write_transaction(engine) as conn:
        conn.execute(update(accounts).where(accounts.c.id == account_id).values(time_zone=zone))


def _months(engine: Engine) -> dict[tuple[int, date], tuple[int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                usage_monthly.c.sim_id,
                usage_monthly.c.month,
                usage_monthly.c.data_up_bytes,
                usage_monthly.c.sms_out,
            )
        )
        return {(r.sim_id, r.month): (r.data_up_bytes, r.sms_out) for r in rows}


def _sim_id(engine: Engine, iccid: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(sim_cards.c.id).where(sim_cards.c.iccid == iccid)).scalar_one()
        )


def test_a_month_adds_up_every_day_of_a_batch_and_a_month_end_splits_it(
    engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    """A batch spanning several days of a SIM's month adds them all to its month; one within
    a single day of each account's zone (another path: no grouping) still gives each account
    its own month when the zones' dates differ."""
    _set_zone(engine, other_tenant.account_id, "Asia/Tokyo")
    [a] = _new_sims(engine, clock, tenant, 1)
    [b] = _new_sims(engine, clock, other_tenant, 1, first=1)
    late_november = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)  # 00:30 on 1 December in Tokyo
    ingest(
        engine,
        "days",
        [
            record(a, datetime(2026, 12, 1, 1, tzinfo=UTC), data_up_bytes=1),
            record(a, datetime(2026, 12, 2, 1, tzinfo=UTC), data_up_bytes=10, sms_out=1),
            record(a, datetime(2026, 12, 3, 1, tzinfo=UTC), data_up_bytes=100),
            record(a, datetime(2026, 11, 30, 23, tzinfo=UTC), data_up_bytes=1000),
        ],
    )
    ingest(
        engine,
        "one day each",
        [record(a, late_november, sms_out=2), record(b, late_november, sms_out=3)],
    )
    months = _months(engine)
    assert months == {
        (_sim_id(engine, a), date(2026, 12, 1)): (111, 1),
        (_sim_id(engine, a), date(2026, 11, 1)): (1000, 2),
        (_sim_id(engine, b), date(2026, 12, 1)): (0, 3),
    }


def test_an_accounts_days_add_up_its_sims_and_keep_a_deleted_sims_usage(
    engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    _set_zone(engine, other_tenant.account_id, "Asia/Tokyo")
    a, b = _new_sims(engine, clock, tenant, 2)
    [c] = _new_sims(engine, clock, other_tenant, 1, first=2)
    evening = datetime(2026, 11, 30, 20, tzinfo=UTC)  # 1 December in Tokyo
    ingest(engine, "1", [record(a, evening, data_up_bytes=1), record(b, evening, data_up_bytes=10)])
    ingest(
        engine, "2", [record(a, NOON, data_up_bytes=100, sms_out=1), record(c, evening, sms_in=3)]
    )
    with write_transaction(engine) as conn:
        conn.execute(sim_cards.delete().where(sim_cards.c.iccid == b))
    with engine.connect() as conn:
        days = usage_store.account_days(
            conn, tenant.account_id, date(2026, 11, 1), date(2026, 12, 31)
        )
        theirs = usage_store.account_days(
            conn, other_tenant.account_id, date(2026, 11, 1), date(2026, 12, 31)
        )
    assert days == {
        date(2026, 11, 30): Totals(data_up_bytes=11),  # b's usage stays in its account's history
        date(2026, 12, 1): Totals(data_up_bytes=100, sms_out=1),
    }
    assert theirs == {date(2026, 12, 1): Totals(sms_in=3)}
