"""The failure budget: a sliding window of failed authentications per key, in the database,
shared by every API process; only failing attempts are counted and refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from m2m.asgi import create_app
from m2m.clock import ManualClock
from m2m.failure_budget import Budget, FailureBudget, address_key, credential_key
from m2m.settings import Settings
from m2m.storage.tables import auth_failures
from tests.support.tenants import Tenant

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(seconds=60)


def test_a_budget_waits_until_the_oldest_counted_failure_leaves_the_window() -> None:
    budget = Budget(max_failures=3, window=MINUTE)
    assert budget.wait([], T0) == 0
    assert budget.wait([T0, T0], T0) == 0
    three = [T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)]
    assert budget.wait(three, T0 + timedelta(seconds=20)) == 40
    assert budget.wait(three, T0 + timedelta(seconds=59.5)) == 1  # never 0 while over budget


def test_keys_hold_fingerprints_never_the_presented_secret() -> None:
    secret = "m2mk_" + "s" * 40
    key = credential_key("api-key", secret)
    assert secret not in key
    assert key == credential_key("api-key", secret)
    assert key != credential_key("token", secret)
    assert len(credential_key("client", "x" * 100_000)) < 100
    assert len(address_key("a" * 100_000)) < 120


def _budget(engine: Engine, clock: ManualClock) -> FailureBudget:
    return FailureBudget(engine, clock, Budget(3, MINUTE), Budget(5, MINUTE))


def test_failures_within_the_budget_are_recorded_and_past_it_are_not(
    engine: Engine, clock: ManualClock
) -> None:
    budget = _budget(engine, clock)
    key = credential_key("client", "abc")
    assert [budget.charge([key]) for _ in range(3)] == [None, None, None]
    wait = budget.charge([key])
    assert wait == 60
    budget.charge([key])
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(auth_failures)).scalar_one()
    assert stored == 3  # the refused attempts cost a read, and wrote nothing

    clock.advance(61)
    assert budget.charge([key]) is None


def test_any_key_over_its_budget_refuses_the_attempt(engine: Engine, clock: ManualClock) -> None:
    budget = _budget(engine, clock)
    address = address_key("192.0.2.1")
    for n in range(5):
        assert budget.charge([address, credential_key("client", f"c{n}")]) is None
    assert budget.charge([address, credential_key("client", "another")]) is not None
    assert budget.charge([address_key("192.0.2.2"), credential_key("client", "another")]) is None


def test_the_budget_is_shared_by_api_processes(
    settings: Settings, engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    """Two API processes (two apps, each with its own services, over one database): failures
    counted by one are refused by the other, so N processes do not give N budgets."""
    wrong = {"grant_type": "client_credentials", "client_id": tenant.client_id}
    with (
        TestClient(create_app(settings, engine=engine, clock=clock)) as first,
        TestClient(create_app(settings, engine=engine, clock=clock)) as second,
    ):
        for n in range(settings.auth_max_failures):
            process = first if n % 2 else second
            assert process.post("/token", data={**wrong, "client_secret": "no"}).status_code == 401
        for process in (first, second):
            refused = process.post("/token", data={**wrong, "client_secret": "no"})
            assert refused.status_code == 429
            valid = process.post("/token", data={**wrong, "client_secret": tenant.client_secret})
            assert valid.status_code == 200
