"""``PreparedRead``: a one-statement read run straight on a pooled driver connection.

The API's hot path is one indexed SELECT per request. Run through a SQLAlchemy ``Connection``,
the machinery around it (connection wrapper, events, execution context, result object, BEGIN and
ROLLBACK) costs several times what SQLite needs for the lookup itself. A ``PreparedRead`` keeps
the statement a Core ``Select`` (one definition for both databases), compiles it once per
dialect, keeps the type processors of its parameters and columns, and executes it on a driver
connection checked out of the engine's pool, outside any transaction: a single SELECT sees a
consistent snapshot by itself.

Only for reads made of one statement; everything else goes through ``Connection``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.types import TypeEngine

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: Sequence[str] | None  # parameter order for positional drivers (SQLite), else None
    binds: Mapping[str, Processor]
    columns: Sequence[Processor]

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        processed = {
            name: (process(values[name]) if process else values[name])
            for name, process in self.binds.items()
        }
        return [processed[name] for name in self.names] if self.names is not None else processed

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            process(value) if process and value is not None else value
            for process, value in zip(self.columns, raw, strict=True)
        )


def _compile(statement: Select[Any], dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    return _Compiled(
        sql=compiled.string,
        names=list(compiled.positiontup or ()) if dialect.positional else None,
        # dialect_impl: the type as this dialect implements it (SQLite keeps datetimes as text).
        binds={
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in compiled.binds.items()
        },
        columns=[_result_processor(column.type, dialect) for column in statement.selected_columns],
    )


def _result_processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    try:
        return type_.dialect_impl(dialect).result_processor(dialect, None)
    except (TypeError, InvalidRequestError):
        # psycopg's numeric types ask for the column's type code, which a statement compiled
        # before its first execution does not know; a Float column (double precision) comes
        # back as a Python float from the driver, which is what it would convert to anyway.
        return None


class PreparedRead:
    """A ``Select`` returning at most one row, to run many times with different parameters."""

    def __init__(self, statement: Select[Any]) -> None:
        self._statement = statement
        # One compiled form per dialect; an engine's dialect lives as long as the engine.
        self._compiled: weakref.WeakKeyDictionary[Dialect, _Compiled] = weakref.WeakKeyDictionary()

    def one_or_none(self, engine: Engine, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run on ``engine`` (see ``engine.single_statement_reads``): the row, or None."""
        compiled = self._compiled.get(engine.dialect)
        if compiled is None:
            compiled = self._compiled[engine.dialect] = _compile(self._statement, engine.dialect)
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
