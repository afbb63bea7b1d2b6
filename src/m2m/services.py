"""The services both web front-ends share (the API and the console), built once from settings.

``create_app`` builds one ``Services`` and hands it to both front-ends, which find it again on
each request with ``services_of``. It sits below the front-ends: the API and the console import
it, never each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from m2m.callbacks.outbound import AddressPolicy
from m2m.clock import Clock, SandboxClock
from m2m.failure_budget import Budget, FailureBudget
from m2m.page_reads import PageReads, concurrency_for
from m2m.rate_limits import AccountBuckets, RateLimit
from m2m.sandbox_controls import SandboxControls
from m2m.settings import Settings
from m2m.storage.engine import single_statement_reads
from m2m.tokens import TokenService

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

    from m2m.worker import Worker


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: Engine
    clock: Clock
    failures: FailureBudget  # failed authentications, counted to stop guessing
    rate_limits: AccountBuckets  # each account's request rate on the M2M API
    tokens: TokenService
    address_policy: AddressPolicy  # where callbacks may be sent
    worker: Worker | None = None  # the in-process worker, when there is one
    sandbox: SandboxControls | None = None  # the control API's objects, in sandbox mode only
    reads: Engine = field(init=False)  # ``engine`` for single-statement reads (the hot path)
    page_reads: PageReads = field(init=False)  # slots for the reads of whole pages

    def __post_init__(self) -> None:
        self.reads = single_statement_reads(self.engine)
        self.page_reads = PageReads(
            concurrency_for(self.settings.page_read_concurrency, self.engine.dialect.name)
        )

    def wake_worker(self) -> None:
        """Make the in-process worker look for ready items and due messages now."""
        if self.worker is not None:
            self.worker.wake()

    def notify_work(self) -> None:
        """Wake the in-process worker; standalone workers notice new work by polling."""
        if self.worker is not None:
            self.worker.notify()


def build_services(settings: Settings, engine: Engine, clock: Clock) -> Services:
    """The services over ``clock``; in the sandbox, over a ``SandboxClock`` that follows it
    (moved through the control API), which the worker must then be given too
    (``services.clock``)."""
    window = timedelta(seconds=settings.auth_failure_window_seconds)
    sandbox_clock = SandboxClock(clock) if settings.sandbox else None
    if sandbox_clock is not None:
        clock = sandbox_clock
    rate_limits = AccountBuckets(
        RateLimit(settings.rate_limit_per_second, settings.rate_limit_burst), clock
    )
    return Services(
        settings=settings,
        engine=engine,
        clock=clock,
        failures=FailureBudget(
            engine,
            clock,
            credential_budget=Budget(settings.auth_max_failures, window),
            address_budget=Budget(settings.auth_address_max_failures, window),
        ),
        rate_limits=rate_limits,
        tokens=TokenService(engine, clock, settings.token_ttl_seconds),
        address_policy=AddressPolicy.from_settings(settings),
        sandbox=SandboxControls(engine, sandbox_clock, rate_limits) if sandbox_clock else None,
    )


def services_of(connection: HTTPConnection) -> Services:
    """The services of the app serving this request (set by ``create_app``)."""
    services: Services = connection.app.state.services
    return services
