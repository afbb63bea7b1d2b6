"""Python's garbage collector set for a long-running server process: ``settle_after_startup``.

After start-up a server process holds a large object graph that lives as long as it does: the
imported modules, FastAPI's routes and pydantic's schemas, SQLAlchemy's compiled statements.
Every full (generation 2) collection walks all of it again; that pause lands on whichever
requests are in flight, and at 64 connections on one process it was about half of the lookup's
p99 (88 ms with the collector on, 45 ms with it off; ``docs/benchmarks.md``). Two remedies:

- ``gc.freeze()`` once start-up is done: what exists then moves to a permanent generation that
  collections no longer walk (it is never freed, and it was never going to be);
- generation 0's threshold raised from 700 to ``YOUNG_THRESHOLD`` allocations: a request makes
  hundreds of short-lived containers, most freed by reference counting alone, so the young
  collections that only found nothing to free run far less often. At most that many more young
  objects wait for a collection (a few megabytes).

Cycles are still collected: only their frequency changes.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
OLDER_THRESHOLDS = (20, 20)  # collections of the younger generation before the next one's


def settle_after_startup() -> None:
    """Freeze what start-up built and space young collections out. Call once per process, when
    it is ready to serve (later calls freeze what has accumulated since, which is harmless)."""
    gc.collect()  # the garbage of start-up itself is freed, not frozen
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
