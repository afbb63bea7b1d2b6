"""The SDK's token handling: cached, renewed before expiry, fetched again once on a 401.

The server runs for real on loopback with a manual clock; the client gets a manual monotonic
clock of its own, so expiry is reached by moving both, never by sleeping. A transport that
records the paths it sends (then sends them for real) counts the calls to /token.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import Engine, delete, func, select

from m2m import accounts
from m2m.audit import ADMIN_CLI
from m2m.client import AsyncM2MClient, AuthenticationError, M2MClient, M2MClientError
from m2m.client.tokens import RENEW_MARGIN_SECONDS, cache_token
from m2m.clock import ManualClock, SystemClock
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET
from m2m.storage import accounts as account_store
from m2m.storage.tables import access_tokens, lifecycle_requests
from tests.support.tenants import Tenant

MSISDN = "32470000001"


class Recording(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)

    def token_calls(self) -> int:
        return self.paths.count("/token")


class AsyncRecording(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await super().handle_async_request(request)


class Ticker:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sandbox_client(base_url: str, **options: object) -> M2MClient:
    return M2MClient(base_url, CLIENT_ID, CLIENT_SECRET, API_KEY, **options)  # type: ignore[arg-type]


# --- the pure decision ------------------------------------------------------------------------


def test_a_new_token_is_renewed_a_margin_before_it_expires() -> None:
    cached = cache_token("a", 3600, asked_at=100.0, previous=None)
    assert cached.expires_at == 3700.0
    assert not cached.due(3700.0 - RENEW_MARGIN_SECONDS - 1)
    assert cached.due(3700.0 - RENEW_MARGIN_SECONDS)


def test_the_same_token_again_is_kept_until_it_really_expires() -> None:
    first = cache_token("a", 3600, asked_at=0.0, previous=None)
    again = cache_token("a", 50, asked_at=3550.0, previous=first)
    assert not again.due(3599.0)
    assert again.due(3600.0)


def test_a_short_lived_token_is_not_renewed_at_once() -> None:
    cached = cache_token("a", 30, asked_at=0.0, previous=None)
    assert not cached.due(20.0)
    assert cached.due(27.0)


# --- against the server -----------------------------------------------------------------------


def test_the_token_is_fetched_once_and_reused(sandbox_server: str) -> None:
    transport = Recording()
    with sandbox_client(sandbox_server, transport=transport) as m2m:
        for _ in range(3):
            assert m2m.get_sim(MSISDN).state == "Active"
    assert transport.token_calls() == 1
    assert transport.paths.count("/m2m/1.0.0/simcards") == 3


def test_renewal_before_expiry_respects_the_single_active_token(
    sandbox_server: str, clock: ManualClock
) -> None:
    transport, ticker = Recording(), Ticker()
    with sandbox_client(sandbox_server, transport=transport, clock=ticker) as m2m:
        first = m2m.access_token()
        clock.advance(3590)  # 10 s left: inside the renewal margin
        ticker.now += 3590
        m2m.get_sim(MSISDN)
        # Asked again, and handed back the same token (it is still valid on the server)…
        assert transport.token_calls() == 2
        assert m2m.access_token() == first
        # … which is then kept until it expires, without asking on every call.
        m2m.get_sim(MSISDN)
        assert transport.token_calls() == 2
        clock.advance(10)
        ticker.now += 10
        m2m.get_sim(MSISDN)
        assert transport.token_calls() == 3
        assert m2m.access_token() != first


def test_a_token_that_expired_early_is_fetched_again_once(
    sandbox_server: str, clock: ManualClock
) -> None:
    transport = Recording()
    with sandbox_client(sandbox_server, transport=transport) as m2m:
        first = m2m.access_token()
        clock.advance(
            3600
        )  # the server's clock ran ahead: the token is dead, the client can't tell
        assert m2m.get_sim(MSISDN).state == "Active"
        assert m2m.access_token() != first
    assert transport.token_calls() == 2


def test_revocation_by_another_process_mid_run(sandbox_server: str, engine: Engine) -> None:
    transport = Recording()
    with sandbox_client(sandbox_server, transport=transport) as m2m:
        first = m2m.access_token()
        m2m.get_sim(MSISDN)
        with sandbox_client(sandbox_server) as other_process:
            assert other_process.access_token() == first  # single active token
            other_process.revoke_token()
        # A lifecycle request refused with 401 accepted nothing: sent again with the new token,
        # it is accepted exactly once.
        tracking = m2m.deactivate([MSISDN], callback_token="encotest")
        assert m2m.access_token() != first
    assert transport.token_calls() == 2
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(lifecycle_requests)).scalar() == 1
        stored = conn.execute(select(lifecycle_requests.c.tracking_number)).scalar()
    assert stored == tracking


def test_the_async_client_caches_and_renews_alike(sandbox_server: str, clock: ManualClock) -> None:
    transport = AsyncRecording()

    async def scenario() -> tuple[str, str]:
        async with AsyncM2MClient(
            sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY, transport=transport
        ) as m2m:
            sims = await asyncio.gather(*(m2m.get_sim(MSISDN) for _ in range(5)))
            assert {sim.state for sim in sims} == {"Active"}
            first = await m2m.access_token()
            clock.advance(3600)
            await m2m.get_sim(MSISDN)
            return first, await m2m.access_token()

    first, renewed = asyncio.run(scenario())
    assert first != renewed
    # Five concurrent first calls may each ask, harmlessly: the server gives them one token.
    assert len(set(transport.paths[: transport.paths.index("/m2m/1.0.0/simcards")])) == 1


def test_wrong_client_credentials(sandbox_server: str) -> None:
    with (
        M2MClient(sandbox_server, CLIENT_ID, "wrong", API_KEY) as m2m,
        pytest.raises(AuthenticationError) as raised,
    ):
        m2m.get_sim(MSISDN)
    assert raised.value.code == "invalid_client"
    assert raised.value.status_code == 401


def test_a_permanent_token_is_used_as_is_and_never_renewed(
    sandbox_server: str, engine: Engine, tenant: Tenant
) -> None:
    transport = Recording()
    with M2MClient(
        sandbox_server, api_key=tenant.api_key, token=tenant.permanent_token, transport=transport
    ) as m2m:
        with pytest.raises(M2MClientError, match="permanent token"):
            m2m.revoke_token()
        assert m2m.access_token() == tenant.permanent_token
        with engine.begin() as conn:
            conn.execute(delete(access_tokens).where(access_tokens.c.name.is_not(None)))  # console
        with pytest.raises(AuthenticationError) as raised:
            m2m.get_sim(MSISDN)
    assert raised.value.code == "invalid_token"
    assert transport.token_calls() == 0


def test_client_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="client_secret"):
        M2MClient("http://127.0.0.1:1", CLIENT_ID, None, API_KEY)
    with pytest.raises(ValueError, match="api_key"):
        M2MClient("http://127.0.0.1:1", CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(ValueError, match="base_url"):
        M2MClient("127.0.0.1:8000", CLIENT_ID, CLIENT_SECRET, API_KEY)


def test_an_account_suspended_mid_run(sandbox_server: str, engine: Engine) -> None:
    with sandbox_client(sandbox_server) as m2m:
        m2m.get_sim(MSISDN)
        with engine.connect() as conn:
            sandbox = account_store.find_sandbox_account(conn)
        assert sandbox is not None
        accounts.set_subscription(engine, SystemClock(), sandbox.id, False, actor=ADMIN_CLI)
        with pytest.raises(M2MClientError) as raised:
            m2m.get_sim(MSISDN)
    assert getattr(raised.value, "code", None) == "subscription_suspended"
