"""How many page reads (a page of the SIM list, the event log, the audit trail) one process runs
at once.

A page read spends most of its time turning rows into Python values and text, under the GIL;
on SQLite the database work itself runs in the process too, and the driver lets go of the GIL
and takes it back at every row. Run by many threads at once, such reads only queue for the GIL,
and each row's hand-back waits behind the others' Python work. Measured with 16 clients on one
process (a page of 100 of 100,000 SIMs, filtered by state and label, SQLite): the thread pool's
40 threads served 333 to 426 pages/s with p99 106 to 157 ms; one read at a time served 785 to 847
pages/s with p99 30 to 35 ms (``docs/benchmarks.md``). On PostgreSQL a read mostly waits for the
server, with the GIL let go, so a few may overlap (2 and 4 measured no worse than 40 there).

The slots are a semaphore taken inside the worker thread, not an async limiter: it works
whatever event loop the app runs in, and a thread waiting on it holds no GIL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# By database, when the setting leaves it to us (0).
DEFAULT_CONCURRENCY = {"sqlite": 1, "postgresql": 4}


def concurrency_for(setting: int, dialect_name: str) -> int:
    """``M2M_PAGE_READ_CONCURRENCY`` when set (above 0), otherwise the database's default."""
    return setting if setting > 0 else DEFAULT_CONCURRENCY.get(dialect_name, 4)


class PageReads:
    """At most ``concurrency`` reads at once; the others wait for a slot."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._slots = threading.BoundedSemaphore(concurrency)

    def run(self, read: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``read(*args, **kwargs)`` in a slot (call it in a worker thread)."""
        with self._slots:
            return read(*args, **kwargs)
