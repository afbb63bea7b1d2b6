"""An account's usage policy, on both databases: with ``deactivate``, a SIM that reaches a
threshold is deactivated through a lifecycle request (TrackingNumber, executed by the worker,
audited as "usage policy", its event's cause ``threshold_policy``); with the default
``notify``, only the events are raised."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from m2m import accounts
from m2m.audit import ADMIN_CLI
from m2m.clock import ManualClock
from m2m.errors import BadRequest
from m2m.settings import Settings
from m2m.storage.tables import audit_events, lifecycle_requests, request_items, sim_cards
from tests.support.events import of_type, stored_events
from tests.support.tenants import Tenant
from tests.support.usage_policy import post, sim_over_its_limit
from tests.support.worker import drain


def test_by_default_reaching_a_threshold_only_notifies(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    iccid, _ = sim_over_its_limit(engine, clock, tenant)
    assert post(engine, clock, iccid, "b") == []
    with engine.connect() as conn:
        assert conn.execute(select(lifecycle_requests)).all() == []


def test_the_deactivate_policy_deactivates_through_a_lifecycle_request(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    accounts.set_usage_settings(
        engine,
        clock,
        tenant.account_id,
        time_zone=None,
        warning_percent=None,
        policy="deactivate",
        actor=ADMIN_CLI,
    )
    iccid, msisdn = sim_over_its_limit(engine, clock, tenant)
    [tracking_number] = post(engine, clock, iccid, "b1")
    # More usage the same day reaches no new mark: no second request.
    assert post(engine, clock, iccid, "b2") == []
    with engine.connect() as conn:
        request = conn.execute(
            select(lifecycle_requests.c.operation, lifecycle_requests.c.callback_token).where(
                lifecycle_requests.c.tracking_number == tracking_number
            )
        ).one()
        items = conn.execute(select(request_items.c.identifier)).scalars().all()
        actors = (
            conn.execute(
                select(audit_events.c.actor).where(audit_events.c.action == "request.deactivation")
            )
            .scalars()
            .all()
        )
    assert tuple(request) == ("deactivation", "usage-policy")
    assert items == [iccid]
    assert actors == ["usage policy"]
    drain(settings, engine, clock)
    with engine.connect() as conn:
        state = conn.execute(select(sim_cards.c.state).where(sim_cards.c.msisdn == msisdn)).scalar()
    assert state == "Deactivated"
    # Its event names the policy as the cause, and the request that carried it out.
    [changed] = of_type(stored_events(engine, tenant.account_id), "sim.state_changed")
    assert changed["data"]["cause"] == "threshold_policy"
    assert changed["data"]["TrackingNumber"] == tracking_number


def test_an_unknown_policy_is_refused(engine: Engine, clock: ManualClock, tenant: Tenant) -> None:
    with pytest.raises(BadRequest, match="notify, deactivate"):
        accounts.set_usage_settings(
            engine,
            clock,
            tenant.account_id,
            time_zone=None,
            warning_percent=None,
            policy="suspend",
            actor=ADMIN_CLI,
        )
