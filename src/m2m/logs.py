"""Logging that never writes a credential: the documented token call puts the client secret in
the query string, which uvicorn's access log would otherwise print verbatim."""

from __future__ import annotations

import logging
from urllib.parse import unquote_plus

SECRET_PARAMETERS = frozenset({"client_secret", "token", "access_token"})


def _masked_query(query: str) -> str:
    parts = []
    for piece in query.split("&"):
        name, sep, _value = piece.partition("=")
        # Names are compared decoded: the server decodes them too (client%5Fsecret works).
        if unquote_plus(name).lower() in SECRET_PARAMETERS:
            parts.append(f"{name}{sep}***")
        else:
            parts.append(piece)
    return "&".join(parts)


def redact(text: str) -> str:
    """``text`` with the values of secret query parameters replaced by ``***``."""
    path, sep, rest = text.partition("?")
    if not sep:
        return text
    query, space, tail = rest.partition(" ")
    return f"{path}?{_masked_query(query)}{space}{tail}"


class RedactSecrets(logging.Filter):
    """Masks secret query parameters in a record's message arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install() -> None:
    """Attach the filter to uvicorn's access logger (call before the server starts)."""
    logging.getLogger("uvicorn.access").addFilter(RedactSecrets())
