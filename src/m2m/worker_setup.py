"""Building the worker and its parts from settings: shared by ``serve`` (in-process worker),
``m2m worker`` (standalone) and tests."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy import Engine

from m2m.callbacks.breaker import BreakerPolicy
from m2m.callbacks.dispatch import DeliveryPolicy
from m2m.callbacks.outbound import AddressPolicy
from m2m.callbacks.poster import CallbackPoster
from m2m.callbacks.sender import CallbackSender
from m2m.callbacks.sent import SentLog
from m2m.clock import Clock
from m2m.network import NetworkAdapter, Simulator
from m2m.settings import Settings
from m2m.worker import Worker


def build_adapter(settings: Settings) -> NetworkAdapter:
    """The simulator, or ``module:factory`` from ``M2M_NETWORK_ADAPTER`` called with settings."""
    if settings.network_adapter == "simulator":
        return Simulator(
            latency_seconds=settings.effective_simulator_latency,
            failure_rate=settings.simulator_failure_rate,
            failing_msisdns=settings.simulator_failing_msisdns,
        )
    module_name, _, attribute = settings.network_adapter.partition(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    adapter: NetworkAdapter = factory(settings)
    return adapter


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    """How the worker shares its delivery slots and when it stops calling a receiver."""
    return DeliveryPolicy(
        account_limit=settings.effective_callback_account_concurrency,
        breaker=BreakerPolicy(
            threshold=settings.callback_breaker_failures,
            schedule=tuple(settings.callback_retry_schedule),
            max_cooldown=settings.callback_breaker_max_cooldown_seconds,
        ),
    )


@asynccontextmanager
async def worker_parts(
    settings: Settings,
    engine: Engine,
    clock: Clock,
    adapter: NetworkAdapter | None = None,
    sent: SentLog | None = None,
) -> AsyncIterator[Worker]:
    """A ready worker (not running), with its callback connections closed on exit. (``sent``: the
    sandbox's record of what the callbacks sent.)"""
    assert settings.secret_key is not None
    poster = CallbackPoster(
        AddressPolicy.from_settings(settings),
        timeout_seconds=settings.callback_timeout_seconds,
        connect_timeout_seconds=settings.callback_connect_timeout_seconds,
        require_https=not settings.sandbox,
    )
    try:
        sender = CallbackSender(
            poster,
            secret_key=settings.secret_key.get_secret_value(),
            clock=clock,
            retry_schedule=settings.callback_retry_schedule,
            timeout_seconds=settings.callback_timeout_seconds,
            connect_timeout_seconds=settings.callback_connect_timeout_seconds,
            rotation_overlap=timedelta(hours=settings.signing_rotation_overlap_hours),
            sent=sent,
        )
        yield Worker(
            engine,
            clock,
            adapter or build_adapter(settings),
            sender,
            batch_size=settings.worker_batch_size,
            poll_seconds=settings.worker_poll_seconds,
            lease_seconds=settings.item_lease_seconds,
            callback_timeout_seconds=settings.callback_timeout_seconds,
            callback_concurrency=settings.callback_concurrency,
            delivery_policy=delivery_policy(settings),
        )
    finally:
        await poster.close()


@asynccontextmanager
async def running_worker(
    settings: Settings,
    engine: Engine,
    clock: Clock,
    adapter: NetworkAdapter | None = None,
    sent: SentLog | None = None,
) -> AsyncIterator[Worker]:
    """A worker running in the background of the current event loop until exit."""
    async with worker_parts(settings, engine, clock, adapter, sent) as worker:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            yield worker
        finally:
            stop.set()
            await task
