"""The M2M API calls a test makes through a ``TestClient``, as the sandbox account by default:
a token, the headers every call needs, the callback configuration, lifecycle requests and
waiting for one to finish, reading a SIM."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.testclient import TestClient

from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET
from tests.support.waiting import wait_for

M2M = "/m2m/1.0.0"  # the API's path prefix


def access_token(
    client: TestClient, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET
) -> str:
    """A token for the client-credentials grant (the sandbox's app by default); ``""`` when the
    credentials are refused."""
    response = client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        },
    )
    return str(response.json().get("access_token", ""))


def auth(client: TestClient) -> dict[str, str]:
    """The headers of the sandbox account's API calls: a fresh bearer token and the API key."""
    return {"Authorization": f"Bearer {access_token(client)}", "x-api-key": API_KEY}


def configure(
    client: TestClient,
    auth_headers: dict[str, str],
    url: str,
    callback_headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /configure/callback: status messages go to ``url``, with ``callback_headers``."""
    body: dict[str, Any] = {"url": url}
    if callback_headers is not None:
        body["headers"] = callback_headers
    return client.post(f"{M2M}/configure/callback", headers=auth_headers, json=body)


def request(
    client: TestClient,
    headers: dict[str, str],
    operation: str,
    devices: list[dict[str, str]],
    callback_token: str = "encotest",
) -> httpx.Response:
    """POST /requests/{operation} for ``devices`` (see ``msisdn``)."""
    return client.post(
        f"{M2M}/requests/{operation}",
        headers={**headers, "x-callback-token": callback_token},
        json=devices,
    )


def msisdn(n: int) -> dict[str, str]:
    """A device of a request body: MSISDN 32470000000 + ``n`` (the sandbox's SIMs: 1 to 100)."""
    return {"identifier": str(32470000000 + n), "identifierType": "MSISDN"}


def wait_until_finished(
    client: TestClient, headers: dict[str, str], tracking: str, timeout: float = 60
) -> dict[str, Any]:
    """GET /requests/{tracking} until the request is finished and no device's callback is
    pending any more; returns that status."""
    status: dict[str, Any] = {}

    def finished() -> bool:
        nonlocal status
        status = client.get(f"{M2M}/requests/{tracking}", headers=headers).json()
        delivered = all(
            d["callback"] and d["callback"]["status"] != "pending" for d in status["devices"]
        )
        return bool(status["finishedAt"]) and delivered

    wait_for(finished, timeout, lambda: f"request {tracking} to finish: {status}", interval=0.05)
    return status


def get_sim(client: TestClient, msisdn: str, token: str, api_key: str = API_KEY) -> httpx.Response:
    """GET /simcards?msisdn=…, as the documentation's curl sends it (``msisdn`` goes into the
    URL as it is: a test may escape it itself)."""
    return client.get(
        f"{M2M}/simcards?msisdn={msisdn}",
        headers={
            "x-api-key": api_key,
            "Accept": "application/json",
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
        },
    )
