"""Usage reported by the network adapter (``m2m.network.UsageSource``): a worker whose adapter
has a ``feed_usage`` runs it beside its loops and counts each batch it reports as the ingestion
endpoint does (``usage_import.ingest_batch``: every record checked, then the batch counted in
one transaction with what the accounts' usage policies do, once per batch id).

The adapter is somebody else's code, so its failures are contained here: a feed that raises is
logged and started again after ``RESTART_SECONDS``; one that returns has nothing more to report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Engine

from m2m.clock import Clock
from m2m.network import BATCH, UsageReceipt, UsageSource
from m2m.usage_import import batch_id_problem, ingest_batch

RESTART_SECONDS = 5.0
STOP_SECONDS = 5.0  # how long a stopping feed is waited for
log = logging.getLogger("m2m.usage_feed")


class UsageReporter:
    """The ``report`` an adapter's feed is given."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    async def __call__(
        self, batch_id: str, records: Sequence[Mapping[str, object]]
    ) -> UsageReceipt:
        if problem := batch_id_problem(batch_id):
            # A receipt, not an exception: raising would restart the feed, which would report
            # the same batch again, for ever.
            return UsageReceipt(0, 0, ((BATCH, f"the batch id: {problem}"),))
        raw = [_as_fields(record) for record in records]
        report = await asyncio.to_thread(ingest_batch, self._engine, self._clock, batch_id, raw)
        return UsageReceipt(
            counted=report.counted,
            already_counted=report.already_counted,
            problems=tuple(report.problems),
        )


def _as_fields(record: Mapping[str, object]) -> Mapping[str, object]:
    # The checks read times as RFC 3339 text (as the CSV and JSON give them); an adapter in
    # Python has datetimes.
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in record.items()
    }


async def run(
    source: UsageSource,
    engine: Engine,
    clock: Clock,
    stop: asyncio.Event,
    *,
    restart_seconds: float = RESTART_SECONDS,
) -> None:
    """Run ``source``'s feed until ``stop`` is set (see the module)."""
    report = UsageReporter(engine, clock)
    while not stop.is_set():
        feed = asyncio.create_task(source.feed_usage(report))
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({feed, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Stopping, or cancelled with the worker's other loops: the feed goes with them.
            stopped.cancel()
            if not feed.done():
                feed.cancel()
                await _gone(feed)
        if stop.is_set() or feed.cancelled():
            return
        if feed.exception() is None:
            log.info("the network adapter's usage feed ended")
            return
        log.error(
            "the network adapter's usage feed failed; starting it again in %g s",
            restart_seconds,
            exc_info=feed.exception(),
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), restart_seconds)


async def _gone(feed: asyncio.Task[None]) -> None:
    """Wait for a cancelled feed to end, a while at most: an adapter that swallows its
    cancellation must not hold the worker's stop for ever."""
    done, _ = await asyncio.wait({feed}, timeout=STOP_SECONDS)
    if not done:
        log.error("the network adapter's usage feed did not stop within %g s", STOP_SECONDS)
    elif not feed.cancelled() and feed.exception() is not None:
        failure = feed.exception()
        log.error("the network adapter's usage feed failed as it stopped", exc_info=failure)
