"""Logging that never writes a credential: the documented token call puts the client secret in
the query string, which uvicorn's access log would otherwise print verbatim.

- The query string of ``/token`` and ``/revoke`` is never logged: a misspelled parameter
  (``client_secret%00=``, ``+client_secret=``, ``;client_secret=``) is still the secret.
- Elsewhere, a parameter named like a secret is masked, and so is any value that looks like one
  of our credentials (they carry recognisable prefixes, ``m2mk_`` …), whatever its name or place.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

from m2m.credentials import PREFIXES

SECRET_PARAMETERS = frozenset({"client_secret", "token", "access_token"})
QUERY_NEVER_LOGGED = frozenset({"/token", "/revoke"})
_CREDENTIAL = re.compile("(" + "|".join(map(re.escape, PREFIXES)) + r")[A-Za-z0-9_\-]+")
_NOT_NAME = re.compile(r"[^a-z0-9_]")


def _masked_piece(piece: str) -> str:
    name, sep, value = piece.partition("=")
    # Compared decoded, as the server reads them (client%5Fsecret works), and without what
    # cannot be part of a name (" client_secret", "client_secret\0").
    decoded_name = unquote_plus(name)
    if _CREDENTIAL.search(decoded_name):
        return "***"
    if _NOT_NAME.sub("", decoded_name.lower()) in SECRET_PARAMETERS:
        return f"{name}{sep}***"
    if _CREDENTIAL.search(unquote_plus(value)):
        return f"{name}{sep}***"
    return piece


def redact(text: str) -> str:
    """``text`` (a request target, or a log line holding one) without credentials."""
    before, sep, rest = text.partition("?")
    path = _CREDENTIAL.sub(r"\1***", before)
    if not sep:
        return path
    query, space, tail = rest.partition(" ")
    if path.rsplit(" ", 1)[-1].rstrip("/") in QUERY_NEVER_LOGGED:
        return f"{path}?***{space}{tail}"
    masked = "&".join(_masked_piece(piece) for piece in query.split("&"))
    return f"{path}?{masked}{space}{tail}"


class RedactSecrets(logging.Filter):
    """Masks credentials in a record's message arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install() -> None:
    """Attach the filter to uvicorn's access logger (call before the server starts)."""
    logging.getLogger("uvicorn.access").addFilter(RedactSecrets())
