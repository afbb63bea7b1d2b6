"""Polling until something holds, for what happens in another thread or process."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    condition: Callable[[], object],
    timeout: float,
    what: str | Callable[[], str],
    *,
    interval: float = 0.1,
) -> None:
    """Call ``condition`` every ``interval`` seconds until it returns something true; after
    ``timeout`` seconds, fail the test naming ``what`` (a function is called then, to describe
    the last state seen)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(interval)
