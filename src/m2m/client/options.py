"""What both clients are built from: checked arguments, the core, the httpx client's settings."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from m2m import __version__
from m2m.client.checks import check_header_value
from m2m.client.core import ClientCore

USER_AGENT = f"m2m-python/{__version__}"


@dataclass(frozen=True, slots=True)
class ClientOptions:
    base_url: str
    client_id: str | None
    client_secret: str | None
    api_key: str
    token: str | None
    max_retries: int

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, not {self.base_url!r}")
        if self.max_retries < 0:
            raise ValueError("max_retries cannot be negative")
        check_header_value("api_key", self.api_key)
        if self.token is not None:
            check_header_value("token", self.token)

    def core(self, clock: Callable[[], float]) -> ClientCore:
        return ClientCore(
            client_id=self.client_id,
            client_secret=self.client_secret,
            api_key=self.api_key,
            token=self.token,
            max_retries=self.max_retries,
            clock=clock,
        )

    def httpx_arguments(
        self, timeout: float | httpx.Timeout, verify: bool | str | Path | ssl.SSLContext
    ) -> dict[str, Any]:
        return {
            "verify": tls_verification(verify),
            "base_url": self.base_url.rstrip("/"),
            "timeout": timeout,
            "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
            # Redirects would re-send the token elsewhere; the API never redirects.
            "follow_redirects": False,
        }


def tls_verification(verify: bool | str | Path | ssl.SSLContext) -> bool | ssl.SSLContext:
    """What httpx takes for ``verify``: a CA bundle given as a path (a private CA, a
    self-signed certificate) becomes a context trusting exactly it; True uses the system's
    certificates; False turns verification off (for a throw-away test server only)."""
    if isinstance(verify, str | Path):
        return ssl.create_default_context(cafile=str(verify))
    return verify
