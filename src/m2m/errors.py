"""The exception tree. Every error a client can see is one of these, answered as JSON.

::

    M2MError                      {"error": code, "error_description": message}
    ├── OAuthError                RFC 6749 §5.2 codes, on /token and /revoke
    │   ├── InvalidRequest        400 invalid_request
    │   ├── InvalidClient         401 invalid_client
    │   ├── UnsupportedGrantType  400 unsupported_grant_type
    │   └── InvalidScope          400 invalid_scope
    ├── BadRequest                422 invalid_request (a field of the request is wrong)
    ├── Unauthenticated           401 missing_token | invalid_token, with WWW-Authenticate: Bearer
    ├── ApiKeyRejected            401 missing_api_key | invalid_api_key
    ├── Forbidden                 403 api_key_mismatch | subscription_suspended | https_required
    │   └── InvalidFields         422 invalid_request, with details: each field and its problem
    ├── NotFound                  404 not_found
    ├── Conflict                  409 idempotency_key_in_use, with Retry-After
    ├── PreconditionFailed        412 precondition_failed (If-Match names another version)
    ├── UnsupportedMediaType      415 unsupported_media_type
    ├── TooManyFailures           429 too_many_failures, with Retry-After
    └── TemporarilyUnavailable    503 temporarily_unavailable, with Retry-After (database busy)

One body shape serves the whole server, the OAuth2 one, so a client parses errors one way.
"""

from __future__ import annotations

from typing import Any, ClassVar


class M2MError(Exception):
    status_code: ClassVar[int] = 400
    default_code: ClassVar[str] = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.message}


class OAuthError(M2MError):
    pass


class InvalidRequest(OAuthError):
    default_code = "invalid_request"


class InvalidClient(OAuthError):
    status_code = 401
    default_code = "invalid_client"


class UnsupportedGrantType(OAuthError):
    default_code = "unsupported_grant_type"


class UnsupportedTokenType(OAuthError):
    """RFC 7009 §2.2.1: the endpoint does not revoke this kind of token (a permanent one)."""

    default_code = "unsupported_token_type"


class InvalidScope(OAuthError):
    default_code = "invalid_scope"


class BadRequest(M2MError):
    status_code = 422
    default_code = "invalid_request"


class InvalidFields(BadRequest):
    """Several fields of a body are wrong: the answer lists each (as request validation does)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {problem}" for field, problem in problems))
        self.details = [{"field": field, "problem": problem} for field, problem in problems]

    def body(self) -> dict[str, Any]:
        return {**super().body(), "details": self.details}


class Unauthenticated(M2MError):
    status_code = 401
    default_code = "invalid_token"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        challenge = 'Bearer realm="m2m"'
        if code != "missing_token":  # RFC 6750 §3.1: no error code when no token was sent
            challenge += ', error="invalid_token"'
        super().__init__(message, code=code, headers={"WWW-Authenticate": challenge})


class ApiKeyRejected(M2MError):
    status_code = 401
    default_code = "invalid_api_key"


class Forbidden(M2MError):
    status_code = 403
    default_code = "forbidden"


class NotFound(M2MError):
    status_code = 404
    default_code = "not_found"


class Conflict(M2MError):
    """Another request with the same Idempotency-Key is still running."""

    status_code = 409
    default_code = "idempotency_key_in_use"

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_seconds)})


class PreconditionFailed(M2MError):
    status_code = 412
    default_code = "precondition_failed"


class UnsupportedMediaType(M2MError):
    status_code = 415
    default_code = "unsupported_media_type"


class TooManyFailures(M2MError):
    status_code = 429
    default_code = "too_many_failures"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            f"Too many failed authentication attempts; retry in {retry_after_seconds} s.",
            headers={"Retry-After": str(retry_after_seconds)},
        )


class RateLimited(M2MError):
    """The account made more requests than its rate limit allows (see ``m2m.rate_limits``)."""

    status_code = 429
    default_code = "rate_limited"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            f"Too many requests for this account; retry in {retry_after_seconds} s.",
            headers={"Retry-After": str(retry_after_seconds)},
        )


class TemporarilyUnavailable(M2MError):
    """The database is busy (SQLite's write lock held past the busy timeout, say, by a large
    import) or unreachable: nothing was done, and the same request can simply be sent again."""

    status_code = 503
    default_code = "temporarily_unavailable"

    def __init__(self, retry_after_seconds: int = 1) -> None:
        super().__init__(
            "The database is busy or unavailable; nothing was changed. Retry shortly.",
            headers={"Retry-After": str(retry_after_seconds)},
        )
