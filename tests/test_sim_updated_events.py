"""``sim.updated`` on both databases: one event per SIM update that changes something, stored
with its audit entry in the update's transaction (none for a patch that changes nothing, is
refused, or whose transaction rolls back)."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from m2m.audit import ADMIN_CLI
from m2m.clock import ManualClock
from m2m.sandbox import demo_iccid
from m2m.storage import sim_updates
from m2m.storage.engine import write_transaction
from m2m.storage.tables import audit_events, events
from tests.support.api import M2M, auth
from tests.support.events import of_type, stored_events
from tests.support.sims import count

ICCID = demo_iccid(1)
SANDBOX_ACCOUNT = 1


def _patch(api: TestClient, headers: dict[str, str], body: object, **extra: str) -> httpx.Response:
    return api.patch(
        f"{M2M}/simcards/{ICCID}",
        headers={**headers, "Content-Type": "application/merge-patch+json", **extra},
        content=json.dumps(body).encode(),
    )


def test_an_update_stores_one_event_with_its_changes(api: TestClient, engine: Engine) -> None:
    headers = auth(api)
    before = _patch(api, headers, {}).json()["CostCenter"]
    assert _patch(api, headers, {"CostCenter": "c1", "Labels": {"site": "gent"}}).status_code == 200

    [event] = of_type(stored_events(engine, SANDBOX_ACCOUNT), "sim.updated")
    assert event["version"] == 1
    assert event["sim"]["ICCID"] == ICCID
    assert event["sim"]["labels"] == {"site": "gent"}  # as the SIM is after the change
    assert event["data"] == {
        "fields": ["CostCenter", "Labels.site"],
        "changes": {
            "CostCenter": {"before": before, "after": "c1"},
            "Labels.site": {"before": None, "after": "gent"},
        },
    }
    assert count(engine, audit_events) == 1

    pulled = api.get(f"{M2M}/events?type=sim.updated", headers=headers).json()["events"]
    assert [e["data"]["fields"] for e in pulled] == [["CostCenter", "Labels.site"]]


def test_no_change_no_event(api: TestClient, engine: Engine) -> None:
    headers = auth(api)
    current = _patch(api, headers, {})
    assert _patch(api, headers, {"CostCenter": current.json()["CostCenter"]}).status_code == 200
    assert _patch(api, headers, {"State": "Active"}).status_code == 422  # refused
    stale = _patch(api, headers, {"CostCenter": "x"}, **{"If-Match": '"999"'})
    assert stale.status_code == 412
    assert stored_events(engine) == []


def test_an_update_whose_transaction_fails_leaves_no_event(
    api: TestClient, engine: Engine, clock: ManualClock
) -> None:
    class Failed(Exception):
        pass

    def update_then_fail() -> None:
        with write_transaction(engine) as conn:
            outcome = sim_updates.update_sim(
                conn,
                account_id=SANDBOX_ACCOUNT,
                iccid=ICCID,
                patch={"CostCenter": "never"},
                if_match=None,
                actor=lambda _conn: ADMIN_CLI,
                now=clock.now(),
            )
            assert outcome.changed
            # The event is written, in this transaction ...
            assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 1
            raise Failed  # ... which then fails before its commit.

    with pytest.raises(Failed):
        update_then_fail()

    assert stored_events(engine) == []
    assert count(engine, audit_events) == 0
    assert _patch(api, auth(api), {}).json()["CostCenter"] != "never"
