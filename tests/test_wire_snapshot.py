"""The wire, pinned: the served OpenAPI document and a transcript of the documented calls must
stay byte-for-byte what they were. A restructure that moves code around must not change either.

The snapshots live in ``tests/data/``. When the wire is meant to change (a new endpoint, a fixed
schema), regenerate them with ``M2M_UPDATE_SNAPSHOTS=1 python3 scripts/run.py test -k wire`` and
review the diff like code: every changed line is a change users see.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET
from tests.support.api import M2M
from tests.support.receiver import Receiver

DATA = Path(__file__).parent / "data"
UPDATE = os.environ.get("M2M_UPDATE_SNAPSHOTS") == "1"
# Values that differ on every run, replaced by a stable placeholder per distinct value.
_VARIABLE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # TrackingNumbers, ids
    r"|\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?"  # times
)
# Headers that say something about the wire (not the server's clock or framing).
_KEPT_HEADERS = ("content-type", "cache-control", "pragma", "www-authenticate", "retry-after")


def _compare(name: str, actual: bytes) -> None:
    path = DATA / name
    if UPDATE:
        path.write_bytes(actual)
    assert path.exists(), f"{path} is missing; generate it with M2M_UPDATE_SNAPSHOTS=1"
    assert actual == path.read_bytes(), f"{name} changed: the wire is not what it was"


def test_the_openapi_document_is_unchanged(client: TestClient) -> None:
    _compare("openapi.json", client.get("/openapi.json").content)


class _Transcript:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._names: dict[str, str] = {}
        self._known: dict[str, str] = {}

    def known(self, value: str, placeholder: str) -> None:
        """A value of this run (a token, the receiver's port) that the transcript names."""
        self._known[value] = placeholder

    def stable(self, text: str) -> str:
        for value, placeholder in self._known.items():
            text = text.replace(value, placeholder)

        def name(match: re.Match[str]) -> str:
            value = match.group(0)
            return self._names.setdefault(value, f"<value {len(self._names) + 1}>")

        return _VARIABLE.sub(name, text)

    def add(self, call: str, response: httpx.Response) -> httpx.Response:
        headers = {k: response.headers[k] for k in _KEPT_HEADERS if k in response.headers}
        self.entries.append(
            {
                "call": call,
                "status": response.status_code,
                "headers": {k: self.stable(v) for k, v in headers.items()},
                "body": self.stable(response.text),
            }
        )
        return response

    def dump(self) -> bytes:
        return (json.dumps(self.entries, indent=2, ensure_ascii=False) + "\n").encode()


def test_the_documented_calls_answer_as_before(
    client: TestClient, seeded: None, receiver: Receiver
) -> None:
    """The documentation's calls in order, and the errors a client meets most, as a transcript
    of status, wire-relevant headers and body (run-specific values replaced by placeholders)."""
    wire = _Transcript()
    wire.known(receiver.url, "<receiver URL>")
    query = (
        f"/token?grant_type=client_credentials&scope=openid&client_id={CLIENT_ID}"
        f"&client_secret={CLIENT_SECRET}&Accept=application/json"
    )
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    first = client.post(query, headers=form)
    token = first.json()
    wire.known(token["access_token"], "<access token>")
    wire.add("POST /token (query)", first)
    wire.add("POST /token again (same token)", client.post(query, headers=form))
    wire.add(
        "POST /token wrong secret",
        client.post(query.replace(CLIENT_SECRET, "wrong"), headers=form),
    )
    auth = {"Authorization": f"Bearer {token['access_token']}", "x-api-key": API_KEY}
    documented = {"Accept": "application/json", "Content-Type": "application/json"}
    wire.add(
        "GET /simcards",
        client.get(f"{M2M}/simcards?msisdn=32470000001", headers={**auth, **documented}),
    )
    wire.add(
        "GET /simcards unknown", client.get(f"{M2M}/simcards?msisdn=32479999999", headers=auth)
    )
    wire.add("GET /simcards no credentials", client.get(f"{M2M}/simcards?msisdn=32470000001"))
    wire.add(
        "GET /simcards wrong key",
        client.get(f"{M2M}/simcards?msisdn=32470000001", headers={**auth, "x-api-key": "nope"}),
    )
    wire.add(
        "POST /configure/callback",
        client.post(
            f"{M2M}/configure/callback",
            headers=auth,
            json={"url": receiver.url, "headers": {"x-test": "Another custom header"}},
        ),
    )
    wire.add("GET /configure/callback", client.get(f"{M2M}/configure/callback", headers=auth))
    wire.add(
        "POST /configure/callback bad header",
        client.post(
            f"{M2M}/configure/callback",
            headers=auth,
            json={"url": receiver.url, "headers": {"Host": "x"}},
        ),
    )
    accepted = wire.add(
        "POST /requests/deactivation",
        client.post(
            f"{M2M}/requests/deactivation",
            headers={**auth, "x-callback-token": "encotest"},
            json=[{"identifier": "32470000001", "identifierType": "MSISDN"}],
        ),
    ).json()
    wire.add(
        "POST /requests/deactivation without x-callback-token",
        client.post(
            f"{M2M}/requests/deactivation",
            headers=auth,
            json=[{"identifier": "32470000001", "identifierType": "MSISDN"}],
        ),
    )
    wire.add(
        "POST /requests/activation malformed",
        client.post(
            f"{M2M}/requests/activation",
            headers={**auth, "x-callback-token": "encotest"},
            content=b'[{"identifier": "1", "identifierType": "MSISDN"}]',
        ),
    )
    deadline = time.monotonic() + 30
    while receiver.count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    status = f"{M2M}/requests/{accepted['TrackingNumber']}"
    while time.monotonic() < deadline:
        devices = client.get(status, headers=auth).json()["devices"]
        if devices[0]["callback"] and devices[0]["callback"]["status"] == "delivered":
            break
        time.sleep(0.05)
    (message,) = receiver.received
    wire.entries.append(
        {
            "call": "the status message POSTed to the callback URL",
            "headers": {
                k: wire.stable(message.headers[k])
                for k in ("content-type", "x-callback-token", "x-test")
            },
            "body": wire.stable(message.body.decode()),
        }
    )
    wire.add("GET /requests/{TrackingNumber}", client.get(status, headers=auth))
    wire.add(
        "POST /revoke",
        client.post(
            "/revoke",
            headers=form,
            content=(
                f"token={token['access_token']}&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
            ),
        ),
    )
    wire.add(
        "GET /simcards with the revoked token",
        client.get(f"{M2M}/simcards?msisdn=32470000001", headers=auth),
    )
    _compare("wire_transcript.json", wire.dump())
