"""Logging that never writes a credential: the documented token call puts the client secret in
the query string, which uvicorn's access log would otherwise print verbatim."""

from __future__ import annotations

import logging
import re

_SECRET_PARAMETER = re.compile(r"(?i)\b(client_secret|token|access_token)=[^&\s\"]*")


def redact(text: str) -> str:
    return _SECRET_PARAMETER.sub(r"\1=***", text)


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
