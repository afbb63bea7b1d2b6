"""The pytest plugin (entry point ``pytest11``: ``m2m``): the ``m2m_sandbox`` fixture.

    def test_my_code_renews_its_token(m2m_sandbox):
        client = MyClient(m2m_sandbox.base_url, m2m_sandbox.client_id, ...)
        client.list_sims()
        m2m_sandbox.clock.advance("61m")
        client.list_sims()  # must get a new token by itself

One sandbox per test process (``m2m_sandbox_server``, session-scoped: under pytest-xdist each
worker has its own, on its own port and data folder), reset before every test that uses
``m2m_sandbox``: the demo state, real time, no faults, the callback URL pointing at a receiver on
loopback (``m2m_sandbox.callbacks``). Loading this plugin imports nothing beyond pytest: the
server starts when a test first asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from m2m.testing.sandbox import SandboxServer


@pytest.fixture(scope="session")
def m2m_sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """The sandbox of this test process, as it is (see ``m2m_sandbox`` for a reset one)."""
    from m2m.testing.sandbox import SandboxServer

    server = SandboxServer.start(tmp_path_factory.mktemp("m2m-sandbox"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def m2m_sandbox(m2m_sandbox_server: SandboxServer) -> SandboxServer:
    """The sandbox, reset to the documented demo state for this test."""
    m2m_sandbox_server.reset()
    return m2m_sandbox_server
