"""The SDK's logic, written once for the sync and the async client ("sans I/O").

Every operation is an ``Exchange`` (see ``actions``): a generator that yields what it needs done
and is resumed with the result. ``M2MClient`` and ``AsyncM2MClient`` only carry those actions out,
so request building, answer parsing, token caching and retry decisions exist in one place:
here, in ``answers``, ``tokens`` and ``retries``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from m2m.client.actions import Exchange, Send, Sleep
from m2m.client.answers import answer, parse
from m2m.client.checks import check_request, device_problem
from m2m.client.errors import (
    APIError,
    ExtensionUnavailable,
    M2MClientError,
    NetworkError,
    NotFoundError,
    PartialSubmissionError,
    TooManyDevicesError,
    UnexpectedResponse,
    WaitTimeout,
)
from m2m.client.models import (
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
from m2m.client.paging import next_cursor
from m2m.client.retries import retry_delay
from m2m.client.tokens import CachedToken, cache_token
from m2m.client.usage import SimUsage, UsageGroup

M2M = "/m2m/1.0.0"
IDEMPOTENCY_KEY = "Idempotency-Key"
_LISTED_SIMS = TypeAdapter(list[ListedSimCard])
DEFAULT_BATCH_SIZE = 10_000  # the server's default maximum; a 413 makes batches smaller
EVENT_PAGE_SIZE = 100
NO_EVENTS = "this server has no event log (GET /m2m/1.0.0/events, an m2m extension)"
NO_SUBSCRIPTIONS = (
    "this server has no event subscriptions (/m2m/1.0.0/event-subscriptions, an m2m extension)"
)
NO_USAGE = "this server does not report usage (GET /m2m/1.0.0/usage, an m2m extension)"
NO_REQUEST_STATUS = (
    "this server does not offer request status (GET /m2m/1.0.0/requests/{TrackingNumber}, "
    "an m2m extension)"
)


def new_idempotency_key() -> str:
    """A key for one write, kept across the SDK's own retries of it."""
    return f"m2m-python-{uuid.uuid4()}"


def _describe(error: httpx.TransportError, send: Send) -> str:
    kind = "timed out" if isinstance(error, httpx.TimeoutException) else "failed"
    detail = str(error) or type(error).__name__
    return f"{send.method} {send.path} {kind}: {detail}"


class ClientCore:
    """Credentials, the cached token and every operation, as exchanges (see the module doc)."""

    def __init__(
        self,
        *,
        client_id: str | None,
        client_secret: str | None,
        api_key: str,
        token: str | None,
        max_retries: int,
        clock: Callable[[], float],
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required: every M2M call needs the account's x-api-key")
        self._client: tuple[str, str] | None = None
        if token is None:
            if not (client_id and client_secret):
                raise ValueError("give client_id and client_secret, or a permanent token")
            self._client = (client_id, client_secret)
        self._permanent = token
        self._api_key = api_key
        self._max_retries = max_retries
        self._clock = clock
        self._cached: CachedToken | None = None

    # --- plumbing ---------------------------------------------------------------------------

    def _send(self, send: Send, *, repeatable: bool) -> Exchange[httpx.Response]:
        attempt = 0
        while True:
            try:
                response: httpx.Response = yield send
            except httpx.TransportError as error:
                delay = retry_delay(attempt, self._max_retries, repeatable=repeatable, error=error)
                if delay is None:
                    raise NetworkError(_describe(error, send)) from error
            else:
                delay = retry_delay(
                    attempt, self._max_retries, repeatable=repeatable, status=response.status_code
                )
                if delay is None:
                    return response
            attempt += 1
            yield Sleep(delay)

    def _authorized(self, send: Send, *, repeatable: bool) -> Exchange[Any]:
        """Send with the token and API key; the answer's JSON (see ``_authorized_answer``)."""
        body, _response = yield from self._authorized_answer(send, repeatable=repeatable)
        return body

    def _authorized_answer(
        self, send: Send, *, repeatable: bool, decode: bool = True
    ) -> Exchange[tuple[Any, httpx.Response]]:
        """Send with the token and API key; on a 401 for the token, fetch a new one once.
        Returns the answer's JSON (None when not ``decode``: the caller parses the body
        itself) and the response (for its headers: an ETag, a Link).

        Retrying after a 401 is safe even for a lifecycle request: the server accepted nothing.
        """
        renewed = False
        while True:
            token = yield from self.access_token()
            headers = {
                **send.headers,
                "Authorization": f"Bearer {token}",
                "x-api-key": self._api_key,
            }
            response = yield from self._send(replace(send, headers=headers), repeatable=repeatable)
            try:
                if not decode and response.is_success:
                    return None, response
                return answer(response), response
            except APIError as error:
                stale = error.status_code == 401 and error.code in ("invalid_token", "http_401")
                if renewed or not stale or self._client is None:
                    raise
                if self._cached is not None and self._cached.value == token:
                    self._cached = None  # revoked or expired early: ask for the current one
                renewed = True

    # --- tokens -------------------------------------------------------------------------------

    def access_token(self) -> Exchange[str]:
        """The token calls are made with: the permanent one, or the app's cached access token."""
        if self._permanent is not None:
            return self._permanent
        assert self._client is not None
        client_id, client_secret = self._client
        now = self._clock()
        if self._cached is not None and not self._cached.due(now):
            return self._cached.value
        send = Send(
            "POST",
            "/token",
            data={"grant_type": "client_credentials", "scope": "openid"},
            auth=(client_id, client_secret),
        )
        body = answer((yield from self._send(send, repeatable=True)))
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise UnexpectedResponse("/token answered without an access_token")
        expires_in = body.get("expires_in")
        if not isinstance(expires_in, int | float):
            raise UnexpectedResponse("/token answered without a numeric expires_in")
        self._cached = cache_token(body["access_token"], float(expires_in), now, self._cached)
        return self._cached.value

    def revoke_token(self) -> Exchange[None]:
        """Revoke the application's current access token; the next call gets a new one."""
        if self._client is None:
            raise M2MClientError(
                "a permanent token cannot be revoked over the API; delete it in the console"
            )
        token = yield from self.access_token()
        client_id, client_secret = self._client
        data = {"token": token, "client_id": client_id, "client_secret": client_secret}
        answer((yield from self._send(Send("POST", "/revoke", data=data), repeatable=True)))
        self._cached = None

    # --- the M2M API --------------------------------------------------------------------------

    def get_sim(self, msisdn: str) -> Exchange[SimCard]:
        send = Send("GET", f"{M2M}/simcards", params={"msisdn": msisdn})
        body = yield from self._authorized(send, repeatable=True)
        if not isinstance(body, list) or not body:
            raise UnexpectedResponse("GET /simcards answered without a SIM card")
        return parse(SimCard, body[0], "SIM card")

    def get_sim_by(self, identifier_type: str, value: str) -> Exchange[ListedSimCard]:
        """The SIM with this ICCID or IMSI (an m2m extension), with its ICCID and MSISDN."""
        params = {identifier_type.lower(): value}
        body = yield from self._authorized(
            Send("GET", f"{M2M}/simcards", params=params), repeatable=True
        )
        if not isinstance(body, list) or not body:
            raise UnexpectedResponse("GET /simcards answered without a SIM card")
        return parse(ListedSimCard, body[0], "SIM card")

    def sims_page(
        self, params: list[tuple[str, str]], cursor: str | None
    ) -> Exchange[tuple[list[ListedSimCard], str | None]]:
        """One page of the SIM list (an m2m extension) and the cursor of the next (None: the
        last page). ``params`` from ``paging.list_params``."""
        query = [*params, ("cursor", cursor)] if cursor is not None else params
        send = Send("GET", f"{M2M}/simcards", params=query)
        _, response = yield from self._authorized_answer(send, repeatable=True, decode=False)
        try:
            # Validated from the bytes in one pass (pydantic-core): three times faster than
            # decoding the JSON and validating each SIM, which dominated walking millions.
            sims = _LISTED_SIMS.validate_json(response.content)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise UnexpectedResponse(f"GET /simcards list: {where}: {problem['msg']}") from error
        return sims, next_cursor(response.headers.get("link"))

    def configure_callback(self, url: str, headers: dict[str, str] | None) -> Exchange[None]:
        body: dict[str, Any] = {"url": url}
        if headers:
            body["headers"] = headers
        # Repeatable: it replaces the whole configuration, so sending it twice changes nothing.
        yield from self._authorized(
            Send("POST", f"{M2M}/configure/callback", json=body), repeatable=True
        )

    def get_callback(self) -> Exchange[CallbackConfig]:
        try:
            body = yield from self._authorized(
                Send("GET", f"{M2M}/configure/callback"), repeatable=True
            )
        except NotFoundError as error:  # 405 too: only POST exists on the operator's server
            raise ExtensionUnavailable(
                "this server does not show the callback configuration (an m2m extension)"
            ) from error
        return parse(CallbackConfig, body, "callback configuration")

    def submit(
        self,
        operation: str,
        devices: Sequence[Device],
        callback_token: str,
        idempotency_key: str | None = None,
    ) -> Exchange[TrackingNumber]:
        """One lifecycle request, sent with an Idempotency-Key (a new one unless given), so
        that re-sending it after a timeout or a 5xx cannot make a second request."""
        check_request(operation, callback_token)
        send = Send(
            "POST",
            f"{M2M}/requests/{operation}",
            json=[d.model_dump(mode="json", by_alias=True) for d in devices],
            headers={
                "x-callback-token": callback_token,
                IDEMPOTENCY_KEY: idempotency_key or new_idempotency_key(),
            },
        )
        body = yield from self._authorized(send, repeatable=True)
        if not isinstance(body, dict) or not isinstance(body.get("TrackingNumber"), str):
            raise UnexpectedResponse("the request was answered without a TrackingNumber")
        return TrackingNumber(body["TrackingNumber"])

    def update_sim(
        self,
        iccid: str,
        changes: Mapping[str, Any],
        if_match: str | None,
        idempotency_key: str | None,
    ) -> Exchange[ListedSimCard]:
        """PATCH a SIM's editable fields (a JSON Merge Patch), with an Idempotency-Key (a new
        one unless given) so that re-sending it is safe, even with ``if_match``."""
        headers = {
            "Content-Type": "application/merge-patch+json",
            IDEMPOTENCY_KEY: idempotency_key or new_idempotency_key(),
        }
        if if_match is not None:
            headers["If-Match"] = if_match
        send = Send(
            "PATCH", f"{M2M}/simcards/{quote(iccid, safe='')}", json=dict(changes), headers=headers
        )
        try:
            body, response = yield from self._authorized_answer(send, repeatable=True)
        except NotFoundError as error:
            if error.status_code == 405:
                raise ExtensionUnavailable(
                    "this server does not update SIMs (PATCH /simcards/{iccid}, an m2m extension)"
                ) from error
            raise
        sim = parse(ListedSimCard, body, "updated SIM card")
        return sim.model_copy(update={"etag": response.headers.get("etag")})

    def submit_all(
        self,
        operation: str,
        devices: Sequence[Device],
        callback_token: str,
        batch_size: int,
        on_batch: Callable[[TrackingNumber, int], None] | None,
    ) -> Exchange[list[TrackingNumber]]:
        """Requests of at most ``batch_size`` devices, halving a batch the server finds too big.

        A 413 accepted nothing, so that batch is simply sent again in halves. Formats are checked
        before anything is sent, so a typo does not leave half of a file submitted.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        check_request(operation, callback_token)
        for index, device in enumerate(devices):
            problem = device_problem(device)
            if problem:
                raise ValueError(f"device {index + 1} ({device.identifier!r}): {problem}")
        tracking_numbers: list[TrackingNumber] = []
        start, size = 0, batch_size
        while start < len(devices):
            batch = devices[start : start + size]
            try:
                number = yield from self.submit(operation, batch, callback_token)
            except TooManyDevicesError as error:
                if len(batch) == 1:
                    raise PartialSubmissionError(error, tracking_numbers, start) from error
                size = len(batch) // 2
                continue
            except M2MClientError as error:
                if not tracking_numbers:
                    raise
                raise PartialSubmissionError(error, tracking_numbers, start) from error
            tracking_numbers.append(number)
            start += len(batch)
            if on_batch is not None:
                on_batch(number, len(batch))
        return tracking_numbers

    def audit_page(
        self, params: list[tuple[str, str]], cursor: str | None
    ) -> Exchange[tuple[list[AuditEvent], str | None]]:
        """One page of the audit trail and the cursor of the next (None: the last page), as
        ``sims_page`` follows the SIM list. ``params`` from ``paging.audit_params``."""
        query = [*params, ("cursor", cursor)] if cursor is not None else params
        send = Send("GET", f"{M2M}/audit-events", params=query)
        try:
            body, response = yield from self._authorized_answer(send, repeatable=True)
        except NotFoundError as error:
            raise ExtensionUnavailable(
                "this server does not offer the audit trail (GET /m2m/1.0.0/audit-events, an "
                "m2m extension)"
            ) from error
        if not isinstance(body, list):
            raise UnexpectedResponse("GET /audit-events answered without a list of events")
        events = [parse(AuditEvent, item, "audit event") for item in body]
        return events, next_cursor(response.headers.get("link"))

    def sim_usage(self, iccid: str, params: dict[str, str]) -> Exchange[SimUsage]:
        """One SIM's usage (an m2m extension); ``params`` from ``usage.sim_usage_params``. A
        SIM that is not the account's is a ``NotFoundError``, as is a server without usage."""
        send = Send("GET", f"{M2M}/simcards/{quote(iccid, safe='')}/usage", params=params)
        body = yield from self._authorized(send, repeatable=True)
        return parse(SimUsage, body, "SIM usage")

    def usage_page(
        self, params: dict[str, str] | None, url: str | None
    ) -> Exchange[tuple[list[UsageGroup], str | None]]:
        """One page of the account's usage (an m2m extension): the first for ``params`` (from
        ``usage.usage_params``), or the one at ``url`` (a Link); and the next page's URL."""
        send = Send("GET", url) if url is not None else Send("GET", f"{M2M}/usage", params=params)
        try:
            body, response = yield from self._authorized_answer(send, repeatable=True)
        except NotFoundError as error:
            raise ExtensionUnavailable(NO_USAGE) from error
        if not isinstance(body, dict) or not isinstance(body.get("usage"), list):
            raise UnexpectedResponse("GET /usage answered without its usage")
        groups = [parse(UsageGroup, item, "usage") for item in body["usage"]]
        return groups, response.links.get("next", {}).get("url")

    def get_request(self, tracking_number: str) -> Exchange[RequestStatus]:
        send = Send("GET", f"{M2M}/requests/{quote(tracking_number, safe='')}")
        try:
            body = yield from self._authorized(send, repeatable=True)
        except NotFoundError as error:
            if error.status_code == 405:
                raise ExtensionUnavailable(NO_REQUEST_STATUS) from error
            raise
        return parse(RequestStatus, body, "request status")

    def events_page(
        self,
        after: str | None,
        types: Sequence[str],
        sim: str | None,
        limit: int,
    ) -> Exchange[EventPage]:
        """One page of the event log after ``after`` (None: from the oldest event kept)."""
        params: dict[str, str | list[str]] = {"limit": str(limit)}
        if after is not None:
            params["after"] = after
        if types:
            params["type"] = list(types)
        if sim is not None:
            params["sim"] = sim
        try:
            body = yield from self._authorized(
                Send("GET", f"{M2M}/events", params=params), repeatable=True
            )
        except NotFoundError as error:
            raise ExtensionUnavailable(NO_EVENTS) from error
        return parse(EventPage, body, "event page")

    # --- event subscriptions (an m2m extension) ----------------------------------------------

    def _subscriptions(
        self, method: str, path: str = "", json: Any = None, *, idempotent: bool = False
    ) -> Exchange[Any]:
        headers = {IDEMPOTENCY_KEY: new_idempotency_key()} if idempotent else {}
        send = Send(method, f"{M2M}/event-subscriptions{path}", json=json, headers=headers)
        try:
            return (yield from self._authorized(send, repeatable=idempotent or method != "POST"))
        except NotFoundError as error:
            if error.status_code == 405 or (error.code != "not_found" and not path):
                raise ExtensionUnavailable(NO_SUBSCRIPTIONS) from error
            raise

    def subscribe(
        self,
        url: str,
        event_types: Sequence[str],
        label_filter: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        status: str,
    ) -> Exchange[EventSubscription]:
        body: dict[str, Any] = {
            "url": url,
            "event_types": list(event_types),
            "label_filter": dict(label_filter or {}),
            "headers": dict(headers or {}),
            "status": status,
        }
        found = yield from self._subscriptions("POST", json=body, idempotent=True)
        return parse(EventSubscription, found, "event subscription")

    def event_subscriptions(self) -> Exchange[list[EventSubscription]]:
        found = yield from self._subscriptions("GET")
        listed = found.get("subscriptions") if isinstance(found, dict) else None
        if not isinstance(listed, list):
            raise UnexpectedResponse("the subscriptions' list answered without subscriptions")
        return [parse(EventSubscription, item, "event subscription") for item in listed]

    def event_subscription(self, subscription_id: str) -> Exchange[EventSubscription]:
        found = yield from self._subscriptions("GET", "/" + quote(subscription_id, safe=""))
        return parse(EventSubscription, found, "event subscription")

    def update_event_subscription(
        self, subscription_id: str, changes: Mapping[str, Any]
    ) -> Exchange[EventSubscription]:
        path = "/" + quote(subscription_id, safe="")
        found = yield from self._subscriptions("PATCH", path, dict(changes), idempotent=True)
        return parse(EventSubscription, found, "event subscription")

    def unsubscribe(self, subscription_id: str) -> Exchange[None]:
        yield from self._subscriptions("DELETE", "/" + quote(subscription_id, safe=""))

    def rotate_subscription_secret(self, subscription_id: str) -> Exchange[EventSubscription]:
        path = "/" + quote(subscription_id, safe="") + "/rotate-secret"
        found = yield from self._subscriptions("POST", path, idempotent=True)
        return parse(EventSubscription, found, "event subscription")

    def replay_subscription(
        self, subscription_id: str, since: datetime
    ) -> Exchange[EventSubscription]:
        if since.tzinfo is None:
            raise M2MClientError("since must be an aware datetime (with its time zone)")
        path = "/" + quote(subscription_id, safe="") + "/replay"
        body = {"since": since.isoformat()}
        found = yield from self._subscriptions("POST", path, body, idempotent=True)
        return parse(EventSubscription, found, "event subscription")

    def wait(
        self,
        tracking_numbers: Sequence[str],
        poll_seconds: float,
        timeout: float | None,
        on_poll: Callable[[list[RequestStatus]], None] | None,
    ) -> Exchange[list[RequestStatus]]:
        """Poll the requests until every device is done; for numbers this server just issued.

        That is why a 404 is read as "no such extension": the server knows these requests.
        """
        started = self._clock()
        latest: dict[str, RequestStatus] = {}
        while True:
            for number in tracking_numbers:
                if number in latest and latest[number].finished:
                    continue
                try:
                    latest[number] = yield from self.get_request(number)
                except NotFoundError as error:
                    raise ExtensionUnavailable(NO_REQUEST_STATUS) from error
            statuses = [latest[n] for n in tracking_numbers]
            if on_poll is not None:
                on_poll(statuses)
            if all(s.finished for s in statuses):
                return statuses
            if timeout is not None and self._clock() - started >= timeout:
                raise WaitTimeout(statuses)
            yield Sleep(poll_seconds)
