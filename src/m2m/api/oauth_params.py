"""Reading OAuth2 request parameters the three ways clients send them.

The documentation's curl puts everything in the query string; RFC 6749 wants a form body; the
operator's own samples use HTTP Basic for the client. All three are accepted, and the RFC's rules
are kept where they do not contradict the documentation: a form body overrides the query string,
a parameter may not repeat with different values within one of them, and a client may not use two
authentication methods in one request (that is ``invalid_client``: authentication failed).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request

from m2m.errors import InvalidClient, InvalidRequest

KNOWN = frozenset({"grant_type", "scope", "client_id", "client_secret", "token", "token_type_hint"})
FORM = "application/x-www-form-urlencoded"
# Client id, secret, token and a few short parameters, each at most a few hundred bytes even
# percent-encoded; a larger form is refused while it streams (``m2m.http_limits``).
MAX_FORM_BYTES = 8 * 1024


@dataclass(frozen=True, slots=True)
class OAuthRequest:
    params: dict[str, str]
    client_id: str | None
    client_secret: str | None
    used_basic: bool


def basic_challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Basic realm="m2m"'}


def _parse_basic(header: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(header, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise InvalidClient(
            "The Basic credentials are not valid base64 of 'client_id:client_secret'.",
            headers=basic_challenge(),
        ) from error
    client_id, sep, client_secret = decoded.partition(":")
    if not sep:
        raise InvalidClient(
            "The Basic credentials must be 'client_id:client_secret'.", headers=basic_challenge()
        )
    # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    return unquote_plus(client_id), unquote_plus(client_secret)


def _merge(sources: list[list[tuple[str, str]]]) -> dict[str, str]:
    """Known parameters from each source in turn; a later source overrides an earlier one.

    Within one source a parameter may not repeat with different values (RFC 6749 §3.2).
    """
    params: dict[str, str] = {}
    for pairs in sources:
        seen: dict[str, str] = {}
        for name, value in pairs:
            if name not in KNOWN:
                continue  # e.g. the documentation's own "Accept=application/json"
            if seen.get(name, value) != value:
                raise InvalidRequest(f"The parameter {name!r} is given more than once.")
            seen[name] = value
        params.update(seen)
    return params


async def read_oauth_request(request: Request) -> OAuthRequest:
    """The request's parameters: the query string (the documentation's way), then a form body."""
    form: list[tuple[str, str]] = []
    body = bytearray()
    async for chunk in request.stream():  # read at most the limit from an unauthenticated caller
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidRequest(f"The form body is larger than {MAX_FORM_BYTES} bytes.")
    if body:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != FORM:
            raise InvalidRequest(f"Send the parameters as {FORM} or in the query string.")
        try:
            form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError as error:
            raise InvalidRequest("The form body is not valid UTF-8.") from error
    params = _merge([list(request.query_params.multi_items()), form])

    client_id, client_secret = params.get("client_id"), params.get("client_secret")
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    used_basic = scheme.lower() == "basic"
    if used_basic:
        if client_secret is not None:
            raise InvalidClient(
                "Use one client authentication method: HTTP Basic or client_secret, not both.",
                headers=basic_challenge(),
            )
        basic_id, client_secret = _parse_basic(credentials.strip())
        if client_id is not None and client_id != basic_id:
            raise InvalidClient(
                "client_id differs from the one in the Basic credentials.",
                headers=basic_challenge(),
            )
        client_id = basic_id
    return OAuthRequest(params, client_id, client_secret, used_basic)
