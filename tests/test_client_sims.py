"""The SDK's SIM list (``client.sims()``, sync and async) against a live server: lazy paging
that follows the server's cursor, filters, and reading one SIM by ICCID or IMSI."""

from __future__ import annotations

import asyncio
from itertools import islice

import httpx
import pytest

from m2m.client import AsyncM2MClient, M2MClient, NotFoundError
from m2m.client.paging import list_params, next_cursor
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET, demo_iccid, demo_imsi, demo_state

SANDBOX_SIMS = 100


class CountingTransport(httpx.HTTPTransport):
    """The real transport, counting the list requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.pages = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/simcards"):
            self.pages += 1
        return super().handle_request(request)


def test_sims_walks_every_page_lazily(sandbox_server: str) -> None:
    transport = CountingTransport()
    with M2MClient(
        sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY, transport=transport
    ) as client:
        sims = client.sims(page_size=7)
        first = list(islice(sims, 10))
        assert transport.pages == 2  # 10 SIMs read: two pages of 7 asked for, not all 15
        rest = list(sims)
    every = first + rest
    assert len(every) == SANDBOX_SIMS
    assert len({sim.iccid for sim in every}) == SANDBOX_SIMS
    assert transport.pages == 15  # ceil(100 / 7): the last page has no Link
    assert [sim.iccid for sim in every[:2]] == [demo_iccid(1), demo_iccid(2)]
    assert every[0].msisdn == "32470000001"
    assert every[0].device.identifier == demo_imsi(1)


def test_sims_filters(sandbox_server: str) -> None:
    with M2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as client:
        ready = list(client.sims(state="Ready", page_size=10))
        expected = [n for n in range(1, SANDBOX_SIMS + 1) if demo_state(n) == "Ready"]
        assert [sim.msisdn for sim in ready] == [str(32470000000 + n) for n in expected]
        several = list(client.sims(state=["Ready", "Deactivated"], msisdn_prefix="324700000"))
        wanted = [n for n in range(1, 100) if demo_state(n) in ("Ready", "Deactivated")]
        assert wanted  # the sandbox has SIMs of both states among its first 99
        assert [sim.msisdn for sim in several] == [str(32470000000 + n) for n in wanted]
        assert list(client.sims(label={"nowhere": None})) == []


def test_one_sim_by_iccid_or_imsi(sandbox_server: str) -> None:
    with M2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as client:
        by_iccid = client.get_sim_by_iccid(demo_iccid(3))
        assert by_iccid == client.get_sim_by_imsi(demo_imsi(3))
        assert by_iccid.msisdn == "32470000003"
        with pytest.raises(NotFoundError):
            client.get_sim_by_imsi("999999999999999")


def test_async_sims(sandbox_server: str) -> None:
    async def collect() -> list[str]:
        async with AsyncM2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as client:
            return [sim.iccid async for sim in client.sims(page_size=30)]

    iccids = asyncio.run(collect())
    assert len(iccids) == len(set(iccids)) == SANDBOX_SIMS


def test_list_params_and_next_cursor() -> None:
    assert list_params(state=["Active", "Ready"], label={"site": "ghent", "tier": None}) == [
        ("state", "Active"),
        ("state", "Ready"),
        ("label", "site=ghent"),
        ("label", "tier"),
        ("limit", "100"),
    ]
    assert list_params(custom_fields={3: "x"}, page_size=5) == [
        ("custom_field_3", "x"),
        ("limit", "5"),
    ]
    link = '<https://elsewhere.example/m2m/1.0.0/simcards?state=Active&cursor=abc_-1>; rel="next"'
    assert next_cursor(link) == "abc_-1"
    assert next_cursor(None) is None
    assert next_cursor('<https://x/a?cursor=1>; rel="prev"') is None
