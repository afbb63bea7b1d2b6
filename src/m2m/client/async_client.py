"""``AsyncM2MClient``: the SDK over ``httpx.AsyncClient``. All logic lives in ``core``."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import httpx

from m2m.client.actions import Exchange, Sleep, step
from m2m.client.checks import as_devices
from m2m.client.core import DEFAULT_BATCH_SIZE, EVENT_PAGE_SIZE
from m2m.client.models import (
    AnyEvent,
    AuditEvent,
    CallbackConfig,
    Device,
    EventPage,
    EventSubscription,
    ListedSimCard,
    RequestStatus,
    SimCard,
    TrackingNumber,
)
from m2m.client.options import ClientOptions
from m2m.client.paging import DEFAULT_PAGE_SIZE, audit_params, list_params
from m2m.client.usage import SimUsage, UsageGroup, sim_usage_params, usage_params

T = TypeVar("T")


class AsyncM2MClient:
    """The asynchronous twin of ``M2MClient``: the same methods, to be awaited.

    Use one per event loop; ``async with AsyncM2MClient(…) as client:`` closes it.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        api_key: str = "",
        *,
        token: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        max_retries: int = 2,
        verify: bool | str | Path | ssl.SSLContext = True,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        options = ClientOptions(base_url, client_id, client_secret, api_key, token, max_retries)
        self._core = options.core(clock)
        self._http = httpx.AsyncClient(
            **options.httpx_arguments(timeout, verify), transport=transport
        )

    async def _run(self, exchange: Exchange[T]) -> T:
        outcome: Any = None
        error: Exception | None = None
        while True:
            action, result = step(exchange, outcome, error)
            if action is None:
                return cast(T, result)
            outcome, error = None, None
            if isinstance(action, Sleep):
                await asyncio.sleep(action.seconds)
                continue
            try:
                outcome = await self._http.request(
                    action.method, action.path, **action.httpx_arguments()
                )
            except httpx.TransportError as transport_error:
                error = transport_error

    async def access_token(self) -> str:
        """The bearer token calls are made with (cached; fetched or renewed when needed)."""
        return await self._run(self._core.access_token())

    async def revoke_token(self) -> None:
        """Revoke the application's current access token (not possible for permanent tokens)."""
        await self._run(self._core.revoke_token())

    async def get_sim(self, msisdn: str) -> SimCard:
        """The profile of the SIM card with this MSISDN; ``NotFoundError`` if not yours."""
        return await self._run(self._core.get_sim(msisdn))

    async def get_sim_by_iccid(self, iccid: str) -> ListedSimCard:
        """The SIM with this ICCID; ``NotFoundError`` if not yours (an m2m extension)."""
        return await self._run(self._core.get_sim_by("ICCID", iccid))

    async def get_sim_by_imsi(self, imsi: str) -> ListedSimCard:
        """The SIM with this IMSI; ``NotFoundError`` if not yours (an m2m extension)."""
        return await self._run(self._core.get_sim_by("IMSI", imsi))

    async def sims(
        self,
        *,
        state: str | Iterable[str] | None = None,
        label: str | Iterable[str] | Mapping[str, str | None] | None = None,
        cost_center: str | None = None,
        custom_fields: Mapping[int, str] | None = None,
        plan: str | None = None,
        updated_since: datetime | str | None = None,
        msisdn_prefix: str | None = None,
        iccid_prefix: str | None = None,
        imsi_prefix: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[ListedSimCard]:
        """Your SIMs matching every filter given, lazily: one page (``page_size`` SIMs) is
        asked for when the previous one has been consumed, following the server's cursor, so
        memory stays flat over millions. ``state`` and ``label`` take one value or several
        (any state; every label); a label is ``"key=value"`` or ``"key"`` (any value), or pass
        a mapping. ``updated_since`` walks in the order of the last change (delta sync). An m2m
        extension."""
        params = list_params(
            state=state,
            label=label,
            cost_center=cost_center,
            custom_fields=custom_fields,
            plan=plan,
            updated_since=updated_since,
            msisdn_prefix=msisdn_prefix,
            iccid_prefix=iccid_prefix,
            imsi_prefix=imsi_prefix,
            page_size=page_size,
        )
        cursor: str | None = None
        while True:
            page, cursor = await self._run(self._core.sims_page(params, cursor))
            for sim in page:
                yield sim
            if cursor is None:
                return

    async def configure_callback(self, url: str, headers: dict[str, str] | None = None) -> None:
        """Set where status messages go, with Authorization/x-* headers to send along."""
        await self._run(self._core.configure_callback(url, headers))

    async def get_callback(self) -> CallbackConfig:
        """The callback configuration, header values masked (an m2m extension)."""
        return await self._run(self._core.get_callback())

    async def request(
        self,
        operation: str,
        devices: Iterable[Device | str],
        callback_token: str,
        *,
        idempotency_key: str | None = None,
    ) -> TrackingNumber:
        """One lifecycle request (``activation`` …); strings are MSISDNs. Sent with an
        Idempotency-Key (``idempotency_key``, or a new one), so that the SDK's own retries after
        a timeout or a 5xx cannot make a second request on a server that honours it."""
        return await self._run(
            self._core.submit(operation, as_devices(devices), callback_token, idempotency_key)
        )

    async def activate(
        self, devices: Iterable[Device | str], callback_token: str
    ) -> TrackingNumber:
        return await self.request("activation", devices, callback_token)

    async def deactivate(
        self, devices: Iterable[Device | str], callback_token: str
    ) -> TrackingNumber:
        return await self.request("deactivation", devices, callback_token)

    async def reactivate(
        self, devices: Iterable[Device | str], callback_token: str
    ) -> TrackingNumber:
        return await self.request("reactivation", devices, callback_token)

    async def terminate(
        self, devices: Iterable[Device | str], callback_token: str
    ) -> TrackingNumber:
        return await self.request("termination", devices, callback_token)

    async def request_all(
        self,
        operation: str,
        devices: Iterable[Device | str],
        callback_token: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_batch: Callable[[TrackingNumber, int], None] | None = None,
    ) -> list[TrackingNumber]:
        """Any number of devices, in requests of at most ``batch_size`` (halved on a 413)."""
        exchange = self._core.submit_all(
            operation, as_devices(devices), callback_token, batch_size, on_batch
        )
        return await self._run(exchange)

    async def update_sim(
        self,
        iccid: str,
        changes: Mapping[str, Any],
        *,
        if_match: str | None = None,
        idempotency_key: str | None = None,
    ) -> ListedSimCard:
        """Change a SIM's cost center, custom fields, thresholds or labels: ``changes`` is a
        JSON Merge Patch in the wire's spelling (``{"Labels": {"site": "ghent", "old": None}}``;
        None removes). ``if_match`` (an ``etag`` from an earlier answer) makes it conditional
        (``PreconditionFailedError`` if the SIM changed since). The answer carries the new
        ``etag``. An m2m extension."""
        return await self._run(self._core.update_sim(iccid, changes, if_match, idempotency_key))

    async def get_request(self, tracking_number: str) -> RequestStatus:
        """A request's progress device by device (an m2m extension)."""
        return await self._run(self._core.get_request(tracking_number))

    async def events_page(
        self,
        after: str | None = None,
        *,
        type: Sequence[str] = (),
        sim: str | None = None,
        limit: int = EVENT_PAGE_SIZE,
    ) -> EventPage:
        """One page of the event log (an m2m extension): the events after the cursor ``after``
        (None: from the oldest kept), oldest first, and the cursor to read on from."""
        return await self._run(self._core.events_page(after, type, sim, limit))

    async def events(
        self,
        after: str | None = None,
        *,
        type: Sequence[str] = (),
        sim: str | None = None,
        page_size: int = EVENT_PAGE_SIZE,
    ) -> AsyncIterator[AnyEvent]:
        """The event log after ``after``, oldest first, fetched page by page as you iterate,
        until the latest event. ``type`` takes types and families (``sim.*``). Keep the ``id``
        of the last event you processed to resume from it (delivery is at least once)."""
        cursor = after
        while True:
            page = await self.events_page(cursor, type=type, sim=sim, limit=page_size)
            for event in page.events:
                yield event
            if len(page.events) < page_size:
                return
            cursor = page.cursor

    # --- event subscriptions (an m2m extension) ----------------------------------------------

    async def subscribe(
        self,
        url: str,
        event_types: Sequence[str],
        *,
        label_filter: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        paused: bool = False,
    ) -> EventSubscription:
        """Subscribe ``url`` to the account's events from now on: ``event_types`` are types,
        families (``sim.*``) or ``*``; ``label_filter`` keeps the events of SIMs with all these
        labels. The answer's ``secret`` is shown only now: verify events with it
        (``EventVerifier``)."""
        status = "paused" if paused else "enabled"
        return await self._run(
            self._core.subscribe(url, event_types, label_filter, headers, status)
        )

    async def event_subscriptions(self) -> list[EventSubscription]:
        """The account's event subscriptions, oldest first."""
        return await self._run(self._core.event_subscriptions())

    async def event_subscription(self, subscription_id: str) -> EventSubscription:
        return await self._run(self._core.event_subscription(subscription_id))

    async def update_event_subscription(
        self, subscription_id: str, changes: Mapping[str, Any]
    ) -> EventSubscription:
        """A JSON Merge Patch of ``url``, ``headers``, ``event_types``, ``label_filter``,
        ``status`` (``paused``/``enabled``)."""
        return await self._run(self._core.update_event_subscription(subscription_id, changes))

    async def unsubscribe(self, subscription_id: str) -> None:
        """Delete the subscription (its events waiting to be sent are dropped)."""
        await self._run(self._core.unsubscribe(subscription_id))

    async def rotate_subscription_secret(self, subscription_id: str) -> EventSubscription:
        """A new signing secret (in ``secret``, shown only now); for a while events carry the
        previous secret's signature too."""
        return await self._run(self._core.rotate_subscription_secret(subscription_id))

    async def replay_subscription(self, subscription_id: str, since: datetime) -> EventSubscription:
        """Send the subscription's events stored since ``since`` (an aware datetime) again."""
        return await self._run(self._core.replay_subscription(subscription_id, since))

    async def wait(
        self,
        tracking_numbers: Sequence[str],
        *,
        poll_seconds: float = 1.0,
        timeout: float | None = None,
        on_poll: Callable[[list[RequestStatus]], None] | None = None,
    ) -> list[RequestStatus]:
        """Follow requests just made until every device is done (needs request status)."""
        return await self._run(self._core.wait(tracking_numbers, poll_seconds, timeout, on_poll))

    async def audit_events(
        self,
        *,
        sim: str | None = None,
        actor: str | None = None,
        action: str | Sequence[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[AuditEvent]:
        """The account's audit trail, newest first, fetched a page at a time as the iteration
        goes (an m2m extension). Filters: ``sim`` (an ICCID), ``actor`` (as recorded: a client_id,
        a token's name, an email), ``action`` (names, or prefixes ending in "."), ``since``/
        ``until`` (datetimes; naive ones are UTC); ``page_size`` events per request (max 1000)."""
        params = audit_params(
            sim=sim, actor=actor, action=action, since=since, until=until, page_size=page_size
        )
        cursor: str | None = None
        while True:
            events, cursor = await self._run(self._core.audit_page(params, cursor))
            for event in events:
                yield event
            if cursor is None:
                return

    async def sim_usage(
        self,
        iccid: str,
        *,
        granularity: str = "day",
        start: date | str | None = None,
        end: date | str | None = None,
    ) -> SimUsage:
        """One SIM's usage by ``granularity`` (hour, day, month) over the account's days
        ``start`` to ``end`` (both included; default: the last 30 days by day), every period
        listed, and where it stands against its thresholds now (an m2m extension)."""
        params = sim_usage_params(granularity, start, end)
        return await self._run(self._core.sim_usage(iccid, params))

    async def usage(
        self,
        *,
        group_by: str = "sim",
        start: date | str | None = None,
        end: date | str | None = None,
        sort: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[UsageGroup]:
        """The account's usage over its days ``start`` to ``end`` (default: this month so far)
        per ``group_by`` (sim, cost_center, label:<key>, day, month), sorted by ``sort`` (data,
        sms, voice: largest first; or key), fetched a page at a time as you iterate (an m2m
        extension). ``itertools.islice(client.usage(sort="data"), 20)``: the top 20."""
        params: dict[str, str] | None = usage_params(group_by, start, end, sort, page_size)
        url: str | None = None
        while params is not None or url is not None:
            groups, url = await self._run(self._core.usage_page(params, url))
            params = None
            for group in groups:
                yield group

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
