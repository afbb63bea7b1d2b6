"""Logging: which request a line belongs to, the two formats (readable text, or one JSON object a
line for log shippers), and never a credential.

A log line never writes a credential: the documented token call puts the client secret in
the query string, which uvicorn's access log would otherwise print verbatim.

- The query string of ``/token`` and ``/revoke`` is never logged: a misspelled parameter
  (``client_secret%00=``, ``+client_secret=``, ``;client_secret=``) is still the secret.
- Elsewhere, a parameter named like a secret is masked, and so is any value that looks like one
  of our credentials (they carry recognisable prefixes, ``m2mk_`` …), whatever its name or place.
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any
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
    """Masks credentials in a record's message, whatever its arguments are (strings, or objects
    such as an HTTP client's URL, which print a query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        # Then the whole line: an argument that is not a string prints its own text.
        record.msg = _CREDENTIAL.sub(r"\1***", redact(record.getMessage()))
        record.args = None
        return True


def install() -> None:
    """Attach the filter to uvicorn's access logger (call before the server starts)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in access.filters):
        access.addFilter(RedactSecrets())


# --- the request a log line belongs to, and the two formats ------------------------------------


@dataclass(slots=True)
class LogContext:
    """What every log line written while handling one request (or one item, one callback
    attempt of it) says about it."""

    request_id: str | None
    account_id: int | None = None


_CURRENT: ContextVar[LogContext | None] = ContextVar("m2m_log_context", default=None)


def current() -> LogContext | None:
    return _CURRENT.get()


def begin(request_id: str | None, account_id: int | None = None) -> LogContext:
    """Make the following log lines of this task (and the tasks it starts) carry these."""
    context = LogContext(request_id, account_id)
    _CURRENT.set(context)
    return context


def note_account(account_id: int) -> None:
    """The request's caller is now known: its log lines name the account from here on."""
    context = _CURRENT.get()
    if context is not None:
        context.account_id = account_id


# Attributes a record may carry (``extra=``) that the JSON format writes as fields.
_FIELDS = ("request_id", "account_id", "route", "status", "duration_ms")


class ContextFilter(logging.Filter):
    """Puts the current request's id and account on every record (unless the record brings
    its own), and ``context``: them as text for the readable format."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _CURRENT.get()
        if context is not None:
            if getattr(record, "request_id", None) is None:
                record.request_id = context.request_id
            if getattr(record, "account_id", None) is None:
                record.account_id = context.account_id
        shown = [
            f"{name}={value}"
            for name in ("request_id", "account_id")
            if (value := getattr(record, name, None)) is not None
        ]
        record.context = f" [{' '.join(shown)}]" if shown else ""
        return True


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers: time (ISO 8601, UTC), level, logger,
    message, and the request's fields when there are any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


LOG_FORMATS = ("text", "json")


def make_handler(log_format: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing to ``stream`` (standard error) in ``log_format``, each line with its
    request's id and without credentials."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactSecrets())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    return handler


def configure(log_format: str = "text", level: str = "INFO") -> None:
    """Send every logger (ours, uvicorn's) to standard error through ``make_handler``. Replaces
    the root logger's handlers, so calling it again (a second app in one process) does not
    write lines twice."""
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(make_handler(log_format))
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for old in logger.handlers[:]:
            logger.removeHandler(old)
        logger.propagate = True
    # The access log is m2m.observe's (with the route and the duration); uvicorn writes its own
    # while its logger has somewhere to go.
    logging.getLogger("uvicorn.access").propagate = False
    install()
