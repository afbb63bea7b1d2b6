"""What the SDK raises. One family per kind of failure, each carrying the server's code and message.

::

    M2MClientError                  anything this SDK raises
    ├── NetworkError                no answer: connection refused, timeout, broken connection
    ├── ExtensionUnavailable        the server lacks an m2m extension (request status)
    ├── PartialSubmissionError      a bulk submission stopped at a failing batch: .cause,
    │                               .tracking_numbers accepted before it
    ├── WaitTimeout                 wait() gave up: .statuses as last seen
    ├── UnexpectedResponse          an answer this API never gives (not JSON, wrong shape)
    └── APIError                    the server answered with an error: .status_code .code .message
        ├── InvalidRequestError     400, 422: invalid_request, invalid_callback, …
        ├── AuthenticationError     401: invalid_client (token endpoint), invalid/missing token
        ├── ApiKeyError             401: invalid_api_key, missing_api_key
        ├── PermissionDeniedError   403: api_key_mismatch, subscription_suspended, …
        ├── NotFoundError           404; 405 (no such method at that path)
        ├── TooManyDevicesError     413: more devices than the server takes in one request
        ├── RateLimitedError        429: too many failed authentications; .retry_after seconds
        └── ServerError             5xx
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from m2m.client.models import RequestStatus, TrackingNumber


class M2MClientError(Exception):
    """Base of everything the SDK raises."""


class NetworkError(M2MClientError):
    """The server could not be reached, or did not answer in time."""


class ExtensionUnavailable(M2MClientError):
    """The server does not offer this m2m extension (the operator's documented API lacks it)."""


class PartialSubmissionError(M2MClientError):
    """A bulk submission stopped at a failing batch; the batches before it were accepted."""

    def __init__(self, cause: M2MClientError, tracking_numbers: list[TrackingNumber], done: int):
        super().__init__(
            f"{cause} — after {len(tracking_numbers)} request(s) for {done} device(s) "
            f"were accepted: {', '.join(tracking_numbers) or 'none'}"
        )
        self.cause = cause
        self.tracking_numbers = tracking_numbers
        self.devices_accepted = done


class WaitTimeout(M2MClientError):
    """``wait`` gave up before every request finished; ``statuses`` is the last seen."""

    def __init__(self, statuses: list[RequestStatus]) -> None:
        unfinished = sum(1 for s in statuses if not s.finished)
        super().__init__(f"{unfinished} request(s) still unfinished")
        self.statuses = statuses


class UnexpectedResponse(M2MClientError):
    """The server answered something the API never answers (not JSON, a different shape)."""


class APIError(M2MClientError):
    """The server refused the call; ``code`` is its stable error code, ``message`` its words."""

    def __init__(self, status_code: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(f"{message} ({code}, HTTP {status_code})")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.retry_after = retry_after


class InvalidRequestError(APIError):
    pass


class AuthenticationError(APIError):
    pass


class ApiKeyError(APIError):
    pass


class PermissionDeniedError(APIError):
    pass


class NotFoundError(APIError):
    pass


class TooManyDevicesError(APIError):
    pass


class RateLimitedError(APIError):
    pass


class ServerError(APIError):
    pass


class ConflictError(APIError):
    """409: a request with the same Idempotency-Key is still running (see ``retry_after``)."""


class PreconditionFailedError(APIError):
    """412: the SIM changed since the ETag given as ``if_match``; read it again."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    413: TooManyDevicesError,
    422: InvalidRequestError,
    429: RateLimitedError,
}
_API_KEY_CODES = {"invalid_api_key", "missing_api_key"}


def error_from_answer(
    status_code: int, body: Any, reason: str, retry_after: str | None = None
) -> APIError:
    """The exception for an error answer; ``body`` is its decoded JSON (anything, or None)."""
    code, message = f"http_{status_code}", reason or f"HTTP {status_code}"
    if isinstance(body, dict):
        code = str(body.get("error") or code)
        message = str(body.get("error_description") or body.get("message") or message)
    if status_code == 401 and code in _API_KEY_CODES:
        kind: type[APIError] = ApiKeyError
    elif status_code >= 500:
        kind = ServerError
    else:
        kind = _BY_STATUS.get(status_code, APIError)
    seconds = int(retry_after) if retry_after and retry_after.isdigit() else None
    return kind(status_code, code, message, seconds)
