"""Rules for a callback configuration (URL and custom headers). Pure checks.

The documentation lets customers set ``Authorization`` and headers starting with ``x-`` "to
prevent interference with internal systems". Beyond that: ``x-callback-token`` belongs to each
request and cannot be fixed here; names must be valid HTTP header names; values may not contain
CR, LF or NUL (header injection).
"""

from __future__ import annotations

import re

# The same rules as JSON-Schema patterns, for the OpenAPI document and request validation.
HEADER_NAME_PATTERN = (
    r"^(?![Xx]-[Cc][Aa][Ll][Ll][Bb][Aa][Cc][Kk]-[Tt][Oo][Kk][Ee][Nn]$)"
    r"([Aa][Uu][Tt][Hh][Oo][Rr][Ii][Zz][Aa][Tt][Ii][Oo][Nn]|[Xx]-[!#$%&'*+.^_`|~0-9A-Za-z-]+)$"
)
HEADER_VALUE_PATTERN = r"^[^\x00-\x08\x0a-\x1f\x7f]*$"
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
# An ASCII host name or IPv4 address (internationalised names in their xn-- form) made of 1 to
# 63-character labels (what name resolution accepts: an empty label, as in ".example" or "a..b",
# was schema-valid yet refused), or a bracketed IPv6 address (without a zone: a zone names an
# interface of this server, which only link-local addresses need, and they are refused); an
# optional port, then any printable ASCII. Whether an address may be called is the address
# policy's decision (``outbound``), for IPv6 as for IPv4.
_H16 = r"[0-9A-Fa-f]{1,4}"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32 = rf"({_H16}:{_H16}|{_OCTET}(\.{_OCTET}){{3}})"
# RFC 3986's IPv6address, all nine forms: exactly the addresses, nothing that only looks like one
# (a schema-valid URL the server then refused would be a contract it breaks).
_IPV6 = "|".join(
    [
        rf"({_H16}:){{6}}{_LS32}",
        rf"::({_H16}:){{5}}{_LS32}",
        rf"({_H16})?::({_H16}:){{4}}{_LS32}",
        rf"(({_H16}:){{0,1}}{_H16})?::({_H16}:){{3}}{_LS32}",
        rf"(({_H16}:){{0,2}}{_H16})?::({_H16}:){{2}}{_LS32}",
        rf"(({_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        rf"(({_H16}:){{0,4}}{_H16})?::{_LS32}",
        rf"(({_H16}:){{0,5}}{_H16})?::{_H16}",
        rf"(({_H16}:){{0,6}}{_H16})?::",
    ]
)
_HOST = rf"([A-Za-z0-9-]{{1,63}}(\.[A-Za-z0-9-]{{1,63}})*\.?|\[({_IPV6})\])"
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://" + _HOST + r"(:" + _PORT + r")?([/?#][!-~]*)?$"
MAX_URL_LENGTH = 2048
MAX_HEADERS = 20
MAX_NAME_LENGTH = 256  # real header names are a few dozen characters; 5,000 were accepted
MAX_VALUE_LENGTH = 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field-name
# Control characters (but tab) are refused by HTTP clients at send time; CR and LF are the
# header-injection ones, and get the explicit message.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
RESERVED = frozenset({"x-callback-token"})


class CallbackConfigError(ValueError):
    """The configuration is refused; the message says why."""


def header_problem(name: str, value: str) -> str | None:
    lowered = name.lower()
    if len(name) > MAX_NAME_LENGTH:
        return f"a header name is longer than {MAX_NAME_LENGTH} characters"
    if not _TOKEN.fullmatch(name):
        return f"header name {name!r} is not a valid HTTP header name"
    if lowered != "authorization" and not lowered.startswith("x-"):
        return f"header {name!r} is not allowed: only Authorization and x-* headers may be set"
    if lowered in RESERVED:
        return f"header {name!r} is set per request (the x-callback-token request header)"
    if _CONTROL.search(value):
        return f"header {name!r} has a control character (CR, LF, NUL, …) in its value"
    if len(value) > MAX_VALUE_LENGTH:
        return f"header {name!r} is longer than {MAX_VALUE_LENGTH} characters"
    return None


def validate_headers(headers: dict[str, str]) -> dict[str, str]:
    """The headers to store, or ``CallbackConfigError`` naming the first problem.

    Header names are case-insensitive: names that differ only in case are one header, and the
    last one given wins (as when a client builds the object from several sources).
    """
    if len(headers) > MAX_HEADERS:
        raise CallbackConfigError(f"at most {MAX_HEADERS} custom headers")
    kept: dict[str, tuple[str, str]] = {}
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem:
            raise CallbackConfigError(problem)
        kept[name.lower()] = (name, value)
    return dict(kept.values())


def masked(headers: dict[str, str]) -> dict[str, str]:
    """Header values hidden, for showing a configuration back."""
    return dict.fromkeys(headers, "****")
