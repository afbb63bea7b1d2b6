"""Statements run straight on the database driver, without SQLAlchemy's execution layer.

``PreparedRead``: a one-statement read run on a pooled driver connection.

The API's hot path is one indexed SELECT per request. Run through a SQLAlchemy ``Connection``,
the machinery around it (connection wrapper, events, execution context, result object, BEGIN and
ROLLBACK) costs several times what SQLite needs for the lookup itself. A ``PreparedRead`` keeps
the statement a Core ``Select`` (one definition for both databases), compiles it once per
dialect, keeps the type processors of its parameters and columns, and executes it on a driver
connection checked out of the engine's pool, outside any transaction: a single SELECT sees a
consistent snapshot by itself.

``PreparedStatement``: a statement run many times inside a ``Connection``'s transaction, on that
connection's own driver cursor. A write path made of a dozen small statements (a SIM update with
an Idempotency-Key: the key, the row, its labels, the audit entry, the event, the answer) spent
more CPU in SQLAlchemy's per-statement work (execution context, parameter processing, result
set-up) than in the database; the same statements prepared this way cost a fraction of it. The
transaction stays SQLAlchemy's (BEGIN, savepoints, COMMIT, ROLLBACK), and a driver error is
raised as SQLAlchemy would raise it (``DBAPIError`` and its subclasses), so callers and
``engine.is_transient`` see no difference.

Both keep the statement a Core construct (one definition for both databases), compile it once
per dialect and keep the type processors of its parameters and result columns. A statement
prepared this way names every value it takes as a ``bindparam`` (``insert_values`` builds such
an INSERT); statements whose shape changes with their values (an expanding IN) stay on
``Connection.execute``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Executable, Insert, Select, Table, bindparam, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.types import TypeEngine

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: Sequence[str] | None  # parameter order for positional drivers (SQLite), else None
    binds: Mapping[str, Processor]  # the parameters the SQL takes, with their type's processor
    fixed: Mapping[str, Any]  # values written into the statement (``values(x=None)``, a LIMIT)
    columns: Sequence[Processor]

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        processed = {}
        for name, process in self.binds.items():
            value = values[name] if name in values else self.fixed[name]
            processed[name] = process(value) if process else value
        return [processed[name] for name in self.names] if self.names is not None else processed

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            process(value) if process and value is not None else value
            for process, value in zip(self.columns, raw, strict=True)
        )


class NotPreparable(ValueError):
    """A statement whose values SQLAlchemy works out at execution, which this module cannot."""


def _compile(statement: Any, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    # Refused, loudly, at first use rather than run wrong: a column default or onupdate computed
    # in Python (SQLAlchemy fills it in at each execution; here it would be sent as NULL), and a
    # bind parameter whose name the dialect must escape (its placeholder is not its name).
    if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
        raise NotPreparable(f"a column default is computed at execution: {compiled.string}")
    if getattr(compiled, "escaped_bind_names", None):
        raise NotPreparable(f"a parameter name needs escaping: {compiled.escaped_bind_names}")
    names = list(compiled.positiontup or ()) if dialect.positional else None
    # Only the parameters the SQL names: a value written as a literal (``locked_until=None``)
    # leaves an unused anonymous one behind in ``binds``.
    used = {
        name: bind
        for name, bind in compiled.binds.items()
        if (name in names if names is not None else f"%({name})s" in compiled.string)
    }
    return _Compiled(
        sql=compiled.string,
        names=names,
        # dialect_impl: the type as this dialect implements it (SQLite keeps datetimes as text).
        binds={
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in used.items()
        },
        fixed={name: bind.effective_value for name, bind in used.items() if not bind.required},
        columns=[_result_processor(column.type, dialect) for column in statement.exported_columns],
    )


def _result_processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    try:
        return type_.dialect_impl(dialect).result_processor(dialect, None)
    except (TypeError, InvalidRequestError):
        # psycopg's numeric types ask for the column's type code, which a statement compiled
        # before its first execution does not know; a Float column (double precision) comes
        # back as a Python float from the driver, which is what it would convert to anyway.
        return None


class _CompiledPerDialect:
    """A statement and its compiled form for each dialect it has run on."""

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        # One compiled form per dialect; an engine's dialect lives as long as the engine.
        self._compiled: weakref.WeakKeyDictionary[Dialect, _Compiled] = weakref.WeakKeyDictionary()

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect)
        if compiled is None:
            compiled = self._compiled[dialect] = _compile(self._statement, dialect)
        return compiled


class PreparedRead(_CompiledPerDialect):
    """A ``Select`` returning at most one row, to run many times with different parameters."""

    def __init__(self, statement: Select[Any]) -> None:
        super().__init__(statement)

    def one_or_none(self, engine: Engine, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run on ``engine`` (see ``engine.single_statement_reads``): the row, or None."""
        compiled = self._for(engine.dialect)
        parameters = compiled.parameters(values)
        try:
            raw = _fetch_one(engine, compiled.sql, parameters)
        except _Disconnected:
            # A pooled connection the server closed (a restart, an idle timeout): the pool has
            # dropped it; a new one is opened. Once: a second failure is a real outage.
            raw = _fetch_one(engine, compiled.sql, parameters)
        return compiled.row(raw) if raw is not None else None


class _Disconnected(Exception):
    pass


def _fetch_one(engine: Engine, sql: str, parameters: Any) -> Sequence[Any] | None:
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(sql, parameters)
            row: Sequence[Any] | None = cursor.fetchone()
            return row
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, connection.dbapi_connection, cursor):
                connection.invalidate(error)
                raise _Disconnected from error
            raise
        finally:
            cursor.close()
    finally:
        connection.close()  # back to the pool


def insert_values(
    table: Table, names: Sequence[str], *, insert_: Callable[..., Any] = insert
) -> Any:
    """``INSERT INTO table (names…) VALUES (:name…)``, each value a bind parameter of its column's
    type, without implicit RETURNING: the form a ``PreparedStatement`` runs. ``insert_``: a
    dialect's own ``insert`` for its ON CONFLICT clauses."""
    statement: Insert = insert_(table)
    return statement.inline().values(
        {name: bindparam(name, type_=table.c[name].type) for name in names}
    )


class PreparedStatement(_CompiledPerDialect):
    """A statement to run many times on a ``Connection``'s transaction (see the module)."""

    def run(self, conn: Connection, values: Mapping[str, Any]) -> None:
        """Run it once, with ``values``."""
        compiled = self._for(conn.dialect)
        _execute(conn, compiled.sql, compiled.parameters(values), many=False, fetch=False)

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run it once per row of ``rows`` (the driver's executemany); nothing for no rows."""
        if not rows:
            return
        compiled = self._for(conn.dialect)
        parameters = [compiled.parameters(values) for values in rows]
        _execute(conn, compiled.sql, parameters, many=True, fetch=False)

    def first(self, conn: Connection, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run it once: its first row (a SELECT's, or what RETURNING gave back), or None."""
        compiled = self._for(conn.dialect)
        raw = _execute(conn, compiled.sql, compiled.parameters(values), many=False, fetch=True)
        return compiled.row(raw) if raw is not None else None


def _execute(
    conn: Connection, sql: str, parameters: Any, *, many: bool, fetch: bool
) -> Sequence[Any] | None:
    """Run ``sql`` on ``conn``'s driver connection (in its transaction); with ``fetch``, its
    first row (None: none). A driver error, from the statement or from fetching its row (SQLite
    steps lazily), becomes the ``DBAPIError`` SQLAlchemy would have raised, the connection
    invalidated first when the error says it is gone."""
    if not conn.in_transaction():
        # As SQLAlchemy's own execute would (autobegin): otherwise the driver would run it
        # outside any transaction SQLAlchemy knows of (SQLite: committed at once; PostgreSQL:
        # an implicit transaction that conn.commit() would not commit).
        conn.begin()
    driver = conn.connection
    cursor = driver.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        row: Sequence[Any] | None = cursor.fetchone() if fetch else None
        return row
    except conn.dialect.loaded_dbapi.Error as error:
        gone = conn.dialect.is_disconnect(error, driver.dbapi_connection, cursor)
        if gone:
            conn.invalidate(error)
        raise DBAPIError.instance(
            sql,
            parameters,
            error,
            conn.dialect.loaded_dbapi.Error,
            connection_invalidated=gone,
            dialect=conn.dialect,
            ismulti=many,
        ) from error
    finally:
        cursor.close()
