"""The usage policy's tests' shared helpers: an account's policy set, a SIM with thresholds
that one record of five SMS reaches, usage posted for it, and where its lifecycle stands."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from m2m import accounts
from m2m.audit import ADMIN_CLI
from m2m.clock import ManualClock
from m2m.storage.tables import lifecycle_requests, sim_cards
from m2m.usage_import import ingest_batch
from tests.support.sims import add_active_sims, change_sim
from tests.support.tenants import Tenant

DAILY_SMS_LIMIT = {"SMSService": {"DailyTreshold": 5}}


def set_policy(
    engine: Engine,
    clock: ManualClock,
    account_id: int,
    *,
    reactivate: bool | None = None,
    time_zone: str | None = None,
) -> None:
    """The ``deactivate`` policy for the account, and the other settings given."""
    accounts.set_usage_settings(
        engine,
        clock,
        account_id,
        time_zone=time_zone,
        warning_percent=None,
        policy="deactivate",
        reactivate=reactivate,
        actor=ADMIN_CLI,
    )


def sim_over_its_limit(
    engine: Engine,
    clock: ManualClock,
    tenant: Tenant,
    profile: dict[str, Any] | None = None,
    *,
    first: int = 0,
) -> tuple[str, str]:
    """An Active SIM of the tenant with ``profile`` (a daily limit of 5 SMS by default), the
    ``first``-th of the bulk numbering: (ICCID, MSISDN)."""
    [msisdn] = add_active_sims(engine, 1, clock.now(), account_id=tenant.account_id, first=first)
    change_sim(engine, msisdn, clock.now(), profile=profile or DAILY_SMS_LIMIT)
    with engine.connect() as conn:
        iccid = conn.execute(select(sim_cards.c.iccid).where(sim_cards.c.msisdn == msisdn)).scalar()
    return str(iccid), msisdn


def post(
    engine: Engine,
    clock: ManualClock,
    iccid: str,
    batch: str,
    *,
    sms: int = 5,
    start: datetime | None = None,
) -> list[str]:
    """Count ``sms`` SMS sent by the SIM (a minute ago, or at ``start``); the TrackingNumbers of
    the deactivations the policy made."""
    started = start or clock.now() - timedelta(minutes=1)
    report = ingest_batch(
        engine, clock, batch, [{"iccid": iccid, "start": started.isoformat(), "sms_out": sms}]
    )
    assert report.problems == []
    return report.deactivations


def state_of(engine: Engine, msisdn: str) -> str:
    with engine.connect() as conn:
        state = conn.execute(select(sim_cards.c.state).where(sim_cards.c.msisdn == msisdn)).scalar()
    return str(state)


def requests(engine: Engine, account_id: int | None = None) -> list[tuple[str, str, str]]:
    """(operation, TrackingNumber, callback token) of the lifecycle requests, oldest first."""
    query = select(
        lifecycle_requests.c.operation,
        lifecycle_requests.c.tracking_number,
        lifecycle_requests.c.callback_token,
    ).order_by(lifecycle_requests.c.id)
    if account_id is not None:
        query = query.where(lifecycle_requests.c.account_id == account_id)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def move_to(clock: ManualClock, moment: datetime) -> None:
    """Move the clock forward to ``moment``."""
    step = (moment - clock.now()).total_seconds()
    assert step >= 0, "a manual clock only moves forward"
    clock.advance(step)
