"""Request ids, end to end, and the log lines a request writes (``m2m.observe``, ``m2m.logs``):
every answer carries an X-Request-ID, the caller's when sane; the same id is on the request's
log lines, in the audit trail, on the lifecycle request, on the worker's lines about it and on
the callbacks it causes; ``M2M_LOG_FORMAT=json`` writes one object a line; no credential ever
reaches a log line."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from m2m import logs
from m2m.asgi import create_app
from m2m.clock import ManualClock
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET
from m2m.settings import Settings
from m2m.storage.tables import audit_events, lifecycle_requests
from tests.support.api import M2M, access_token, auth, configure, msisdn, request
from tests.support.receiver import Receiver
from tests.support.tenants import Tenant
from tests.support.worker import drain

GENERATED = re.compile(r"[0-9a-f]{32}")


@contextmanager
def captured(log_format: str) -> Iterator[io.StringIO]:
    """Every log line written meanwhile (DEBUG and up, every logger), as the server writes
    them in ``log_format``."""
    stream = io.StringIO()
    handler = logs.make_handler(log_format, stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """The server's lines (not the test client's own, httpx's)."""
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["logger"].startswith("m2m")]


def test_every_answer_carries_a_request_id_the_callers_when_sane(api: TestClient) -> None:
    sent = api.get(f"{M2M}/simcards?msisdn=1", headers={"X-Request-ID": "trace-42"})
    assert sent.status_code == 401
    assert sent.headers["x-request-id"] == "trace-42"
    for header in ("x" * 101, "two words", ""):
        answer = api.get("/no/such/page", headers={"X-Request-ID": header})
        assert answer.status_code == 404
        assert GENERATED.fullmatch(answer.headers["x-request-id"]), header
    ids = {api.get("/openapi.json").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3  # a new one for each call
    assert all(GENERATED.fullmatch(i) for i in ids)
    # The console's pages too.
    assert GENERATED.fullmatch(api.get("/console/login").headers["x-request-id"])


def test_a_request_id_follows_a_lifecycle_request_to_its_callbacks(
    api: TestClient,
    quiet: Settings,
    engine: Engine,
    clock: ManualClock,
    receiver: Receiver,
) -> None:
    headers = auth(api)
    assert configure(api, headers, receiver.url).is_success
    with captured("json") as stream:
        answer = api.post(
            f"{M2M}/requests/deactivation",
            headers={**headers, "x-callback-token": "t", "X-Request-ID": "complaint-7"},
            json=[msisdn(1), msisdn(2)],
        )
        assert answer.status_code == 202
        assert answer.headers["x-request-id"] == "complaint-7"
        tracking = answer.json()["TrackingNumber"]
        drain(quiet, engine, clock)
    # The callbacks carry it to the receiver.
    assert len(receiver.received) == 2
    assert {r.headers["x-request-id"] for r in receiver.received} == {"complaint-7"}
    # The audit trail and the request keep it.
    with engine.connect() as conn:
        assert conn.execute(
            select(audit_events.c.request_id).where(audit_events.c.subject == tracking)
        ).scalar_one() == ("complaint-7")
        assert conn.execute(
            select(lifecycle_requests.c.http_request_id).where(
                lifecycle_requests.c.tracking_number == tracking
            )
        ).scalar_one() == ("complaint-7")
    # The request's access line and the worker's lines about its callbacks name it.
    lines = json_lines(stream)
    access = [line for line in lines if line["logger"] == "m2m.access"]
    assert len(access) == 1
    assert access[0]["request_id"] == "complaint-7"
    assert access[0]["route"] == f"{M2M}/requests/deactivation"
    assert access[0]["status"] == 202
    attempts = [line for line in lines if line["message"].startswith("callback ")]
    assert len(attempts) == 2
    assert {line["request_id"] for line in attempts} == {"complaint-7"}


def test_json_lines_carry_the_request_s_fields(api: TestClient, engine: Engine) -> None:
    headers = auth(api)
    with captured("json") as stream:
        answer = api.get(f"{M2M}/simcards?msisdn=32470000001&x=1", headers=headers)
    assert answer.status_code == 422
    [line] = json_lines(stream)
    assert line["logger"] == "m2m.access"
    assert line["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])
    assert line["request_id"] == answer.headers["x-request-id"]
    assert line["route"] == f"{M2M}/simcards"
    assert line["status"] == 422
    assert line["duration_ms"] >= 0
    assert isinstance(line["account_id"], int)  # the caller was identified
    assert "GET /m2m/1.0.0/simcards?msisdn=32470000001&x=1" in line["message"]


def test_the_text_format_names_the_request_too(api: TestClient) -> None:
    with captured("text") as stream:
        answer = api.get("/openapi.json", headers={"X-Request-ID": "abc-1"})
    [line] = [line for line in stream.getvalue().splitlines() if " m2m." in line]
    assert answer.status_code == 200
    assert "m2m.access" in line
    assert '"GET /openapi.json HTTP/1.1" 200' in line
    assert line.endswith("[request_id=abc-1]")


def test_probes_are_not_logged_at_info(api: TestClient) -> None:
    with captured("json") as stream:
        assert api.get("/healthz").status_code == 200
        assert api.get("/openapi.json").status_code == 200
    levels = {line["message"].split('"')[1]: line["level"] for line in json_lines(stream)}
    assert levels == {"GET /healthz HTTP/1.1": "DEBUG", "GET /openapi.json HTTP/1.1": "INFO"}


def test_no_credential_reaches_a_log_line(
    settings: Settings,
    engine: Engine,
    clock: ManualClock,
    seeded: None,
    tenant: Tenant,
    receiver: Receiver,
) -> None:
    """A workload touching every credential the tests can create, logged at DEBUG in both
    formats: none of them appears in any line."""
    app = create_app(settings.model_copy(update={"embedded_worker": False}), engine=engine)
    created: list[str] = [
        CLIENT_SECRET,
        API_KEY,
        tenant.api_key,
        tenant.client_secret,
        tenant.permanent_token,
        "receiver-authorization-value",
    ]
    with captured("json") as as_json, captured("text") as as_text, TestClient(app) as client:
        # Tokens by every documented way: query string, form, Basic.
        by_query = client.post(
            f"/token?grant_type=client_credentials&client_id={tenant.client_id}"
            f"&client_secret={tenant.client_secret}"
        ).json()["access_token"]
        created.append(by_query)
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        by_basic = client.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        ).json()["access_token"]
        created.extend([by_basic, access_token(client)])
        # Wrong secrets, in the query of other routes too.
        client.post(f"/token?grant_type=client_credentials&client_id=x&client_secret={by_query}")
        client.get(f"{M2M}/simcards?msisdn=1&api_key={tenant.api_key}&token={by_query}")
        tenant_headers = {"Authorization": f"Bearer {by_query}", "x-api-key": tenant.api_key}
        permanent = {"Authorization": f"Bearer {tenant.permanent_token}", "x-api-key": API_KEY}
        client.get(f"{M2M}/simcards?msisdn=1", headers=permanent)  # mismatched: refused
        client.get(f"{M2M}/simcards?msisdn=1", headers=tenant_headers)
        sandbox = {"Authorization": f"Bearer {by_basic}", "x-api-key": API_KEY}
        configure(
            client,
            sandbox,
            receiver.url,
            {"Authorization": "receiver-authorization-value"},
        )
        request(client, sandbox, "deactivation", [msisdn(3)], callback_token="callback-tok-1")
        created.append("callback-tok-1")
        client.post("/revoke", data={"token": by_basic}, auth=(CLIENT_ID, CLIENT_SECRET))
        drain(settings, engine, clock)
    assert receiver.received  # the callback went out (and its sending was logged)
    written = as_json.getvalue() + as_text.getvalue()
    assert "m2m.access" in written
    assert "callback " in written
    for credential in created:
        assert credential not in written, credential
