"""``m2m serve``'s HTTP protocol serving an ASGI app in the test's own event loop, on a real
socket: for tests that watch what the protocol writes and when."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from m2m.http_head import BoundedHttpToolsProtocol


@asynccontextmanager
async def protocol_server(
    app: Any, protocol: type[BoundedHttpToolsProtocol] = BoundedHttpToolsProtocol
) -> AsyncIterator[int]:
    """Serve ``app`` on 127.0.0.1 with ``protocol`` while the block runs: its port."""
    config = Config(app=app, lifespan="off", log_config=None)
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: protocol(config, state, {}), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
