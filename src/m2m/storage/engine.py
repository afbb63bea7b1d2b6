"""Creating the database engine: one place that knows the per-database settings."""

from __future__ import annotations

import sqlite3
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

_IMMEDIATE = "m2m_immediate"
BUSY_TIMEOUT_SECONDS = 10.0  # how long SQLite waits for another connection's write lock
CONNECT_TIMEOUT_SECONDS = 10  # how long a new PostgreSQL connection may take

# The URL schemes that work: the engine is synchronous, and psycopg 3 is the PostgreSQL driver the
# project installs (an async driver, or one not installed, would fail only on first use).
SUPPORTED_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")
URL_EXAMPLES = "sqlite:////absolute/path/m2m.db or postgresql://user:password@host:5432/database"


def database_url_problem(database_url: str) -> str | None:
    """What makes ``database_url`` unusable here, or None. Never quotes the URL: it may hold a
    password."""
    try:
        url = make_url(database_url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return f"not a database URL; use {URL_EXAMPLES}"
    if url.drivername in SUPPORTED_SCHEMES:
        return None
    backend, _, driver = url.drivername.partition("+")
    if backend in ("sqlite", "postgresql"):
        return f"the driver {driver!r} is not supported; write {backend}:// without one"
    if backend == "postgres":  # the scheme of many hosting providers' URLs
        return "write postgresql://, not postgres://"
    return f"{backend} is not supported: m2m runs on SQLite or PostgreSQL ({URL_EXAMPLES})"


def _on_sqlite_connect(
    dbapi_connection: sqlite3.Connection, _record: Any, *, busy_timeout: float
) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (the pysqlite recipe), so that savepoints
    # work and write transactions can take the lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the API) run while a writer (the admin CLI, the worker) commits;
    # synchronous=FULL makes every commit durable across a power cut, not only a crash.
    _enable_wal(cursor, busy_timeout)
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    cursor.close()


def _enable_wal(cursor: sqlite3.Cursor, wait: float) -> None:
    # Switching a new database to WAL needs an exclusive lock, and SQLite answers "database is
    # locked" at once, without its busy handler, when processes starting together (API and
    # workers on a fresh data folder) race for it. Once one of them has switched, the mode is
    # stored in the file and the pragma is a no-op for the rest; so wait a little and retry.
    deadline = time.monotonic() + wait
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _on_sqlite_begin(conn: Connection) -> None:
    # A deferred transaction that reads and then writes fails at once (SQLITE_BUSY) if another
    # writer committed in between; BEGIN IMMEDIATE waits for the lock (busy_timeout) instead.
    immediate = conn.get_execution_options().get(_IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(
    database_url: str,
    *,
    pool_size: int = 20,
    max_overflow: int = 20,
    busy_timeout: float = BUSY_TIMEOUT_SECONDS,
) -> Engine:
    """An engine for ``database_url``. Each process holds up to ``pool_size + max_overflow``
    connections: on PostgreSQL, processes x that must stay below the server's max_connections.
    ``busy_timeout``: SQLite only, seconds to wait for the write lock before giving up."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_args={"check_same_thread": False, "timeout": busy_timeout},
        )
        event.listen(engine, "connect", partial(_on_sqlite_connect, busy_timeout=busy_timeout))
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        # The bare scheme means psycopg 3 here, the driver this project installs.
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        connect_args=_postgres_connect_args(url),
    )


def _postgres_connect_args(url: URL) -> dict[str, Any]:
    # Without a connect timeout, a server behind a firewall that drops packets leaves every
    # command and request hanging for the TCP timeout (minutes); the URL's own value wins.
    return {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}


def single_statement_reads(engine: Engine) -> Engine:
    """The engine for reads made of one statement, run as ``storage.prepared.PreparedRead``
    (the API's hot path).

    SQLite: ``engine`` itself. PostgreSQL: a small pool of its own (such reads run one at a time
    per process, on the event loop), disposed with ``engine``, in autocommit (no BEGIN and
    ROLLBACK round trips around the statement) and without pre-ping (one more round trip per
    request); ``PreparedRead`` retries once on a connection found dead instead.
    """
    if engine.dialect.name == "sqlite":
        return engine
    reads = _reads_engines.get(engine)
    if reads is None:
        # In autocommit there is no transaction to roll back when a connection is checked in.
        reads = create_engine(
            engine.url,
            pool_size=2,
            max_overflow=8,
            isolation_level="AUTOCOMMIT",
            pool_reset_on_return=None,
            connect_args=_postgres_connect_args(engine.url),
        )
        event.listen(engine, "engine_disposed", lambda _engine: reads.dispose())
        _reads_engines[engine] = reads
    return reads


_reads_engines: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def take_write_lock_at_begin(conn: Connection) -> None:
    """Make this connection's next transactions BEGIN IMMEDIATE on SQLite (no-op elsewhere)."""
    conn.execution_options(**{_IMMEDIATE: True})


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: it takes SQLite's write lock at BEGIN. Commits on success."""
    with engine.connect() as conn:
        take_write_lock_at_begin(conn)
        with conn.begin():
            yield conn


# SQLite result codes (the low byte of an extended code): another connection holds the lock.
_SQLITE_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
# PostgreSQL SQLSTATE classes and codes after which the same transaction may succeed if retried.
_POSTGRES_TRANSIENT_CLASSES = (
    "08",
    "40",
    "53",
)  # connection; rollback (deadlock, serialization); resources
_POSTGRES_TRANSIENT_CODES = {"55P03", "57P01", "57P02", "57P03"}  # lock timeout; shutdown; starting


def is_transient(error: BaseException) -> bool:
    """Whether a database error means "busy or unreachable, try again" rather than a bug: the
    API answers those with 503 and Retry-After instead of 500."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    original = error.orig
    if isinstance(original, sqlite3.OperationalError):
        code = getattr(original, "sqlite_errorcode", 0)
        return code & 0xFF in _SQLITE_BUSY_CODES
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate is None:
        # psycopg raises OperationalError without a SQLSTATE when it cannot reach the server.
        return isinstance(error, sa_exc.OperationalError) and "psycopg" in type(original).__module__
    return sqlstate[:2] in _POSTGRES_TRANSIENT_CLASSES or sqlstate in _POSTGRES_TRANSIENT_CODES
