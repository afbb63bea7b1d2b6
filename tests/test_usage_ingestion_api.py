"""POST /operator/1.0.0/usage on both databases: the operator's mediation system posts batches
with an operator token; a batch counts once; nothing is counted from a batch with a problem;
no customer credential opens it, and a revoked token stops working."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from m2m import operator_tokens
from m2m.clock import ManualClock
from m2m.storage.tables import usage_daily
from tests.support.api import auth
from tests.support.usage import sandbox_sim

URL = "/operator/1.0.0/usage"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sms_counted(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.sum(usage_daily.c.sms_out))).scalar() or 0)


def batch(batch_id: str, *records: dict[str, Any]) -> dict[str, Any]:
    return {"batch_id": batch_id, "records": list(records)}


def test_a_batch_posted_twice_counts_once(
    api: TestClient, engine: Engine, clock: ManualClock
) -> None:
    _, token = operator_tokens.create(engine, clock, "mediation")
    iccid, _ = sandbox_sim(engine)
    start = (clock.now() - timedelta(minutes=30)).isoformat()
    body = batch("cdr-2026-12-01-0001", {"iccid": iccid, "start": start, "sms_out": 3})
    first = api.post(URL, json=body, headers=bearer(token))
    assert first.status_code == 200, first.text
    assert first.json() == {
        "batch_id": "cdr-2026-12-01-0001",
        "records": 1,
        "counted": 1,
        "already_counted": 0,
        "inactive": 0,
        "threshold_events": 0,
    }
    again = api.post(URL, json=body, headers=bearer(token))
    assert again.json()["already_counted"] == 1
    assert sms_counted(engine) == 3


def test_a_batch_with_a_problem_counts_nothing_and_names_the_record(
    api: TestClient, engine: Engine, clock: ManualClock
) -> None:
    _, token = operator_tokens.create(engine, clock, "mediation")
    iccid, _ = sandbox_sim(engine)
    start = clock.now().isoformat()
    answer = api.post(
        URL,
        json=batch(
            "b1",
            {"iccid": iccid, "start": start, "sms_out": 1},
            {"iccid": iccid, "start": start, "sms_out": -1},
        ),
        headers=bearer(token),
    )
    assert answer.status_code == 422
    assert "records[1]" in answer.text
    assert "sms_out must be a whole number" in answer.text
    unknown = api.post(
        URL,
        json=batch("b1", {"iccid": "89320199999999999990", "start": start, "sms_out": 1}),
        headers=bearer(token),
    )
    assert unknown.status_code == 422
    assert "no SIM with ICCID 89320199999999999990" in unknown.text
    for body, expected in [
        ({"records": []}, "batch_id"),
        (batch("x" * 101, {"iccid": iccid, "start": start}), "batch_id"),
        (batch("b2"), "non-empty list"),
        ([1, 2], "an object"),
    ]:
        refused = api.post(URL, json=body, headers=bearer(token))
        assert refused.status_code == 422, (body, refused.text)
        assert expected in refused.text
    assert sms_counted(engine) == 0


def test_only_a_live_operator_token_opens_it(
    api: TestClient, engine: Engine, clock: ManualClock
) -> None:
    iccid, _ = sandbox_sim(engine)
    body = batch("b", {"iccid": iccid, "start": clock.now().isoformat(), "sms_out": 1})
    assert api.post(URL, json=body).status_code == 401
    customer = auth(api)
    assert api.post(URL, json=body, headers=customer).status_code == 401
    token_id, token = operator_tokens.create(engine, clock, "mediation")
    assert api.post(URL, json=body, headers=bearer(token + "x")).status_code == 401
    operator_tokens.revoke(engine, clock, token_id)
    refused = api.post(URL, json=body, headers=bearer(token))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert sms_counted(engine) == 0
