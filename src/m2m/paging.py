"""Keyset pagination's wire form: an opaque cursor and the ``Link: <…>; rel="next"`` header
(RFC 8288). Pure; the storage modules page by the values a cursor carries.

A cursor is the key of the last row of a page (base64url JSON, so that it stays opaque to
clients and can grow a field without breaking old ones); the next page is the rows after it in
the listing's stable order. It carries no filter: the ``Link`` repeats the query's own.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_VERSION = 1


class InvalidCursor(ValueError):
    """A cursor this server did not make (or an older, incompatible one)."""


def encode_cursor(key: dict[str, Any]) -> str:
    raw = json.dumps({"v": _VERSION, **key}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *fields: str) -> dict[str, Any]:
    """The key a cursor carries, with exactly ``fields``; ``InvalidCursor`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as error:
        raise InvalidCursor("not a cursor this server gave") from error
    if not isinstance(key, dict) or key.pop("v", None) != _VERSION or set(key) != set(fields):
        raise InvalidCursor("not a cursor this server gave")
    return key


def next_link(url: str, cursor: str, parameter: str = "cursor") -> str:
    """The ``Link`` header of a page that has a next one: the same (absolute) URL, its query
    with ``parameter`` set to the next page's cursor (RFC 8288 wants a URI; an absolute one is
    what every HTTP client follows without knowing the base)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != parameter]
    next_url = urlunsplit(parts._replace(query=urlencode([*query, (parameter, cursor)])))
    return f'<{next_url}>; rel="next"'
