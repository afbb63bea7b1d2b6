"""What the item queue and the callback outbox share: leasing rows nobody else holds, listing the
tenants with work waiting and reading each one's head of the queue, and the status literals their
partial indexes are written against.

The claims run every few milliseconds, so their statements are built once (module constants, or
cached per shape) with bound parameters: building and keying a Core statement per call cost
several times the queries themselves (as on the API's hot path, docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    CompoundSelect,
    Connection,
    Select,
    String,
    Table,
    Update,
    bindparam,
    literal_column,
    select,
    union_all,
    update,
)

# Literals, not bound parameters: SQLite uses a partial index only when the query's condition
# matches the index's WHERE clause textually.
DONE: ColumnElement[str] = literal_column("'done'", String)
PENDING: ColumnElement[str] = literal_column("'pending'", String)
CLAIMED: ColumnElement[str] = literal_column("'claimed'", String)

# Heads read in one statement at most: SQLite refuses a compound SELECT of more than 500 parts,
# and each count of parts is one more statement to cache.
HEADS_PER_STATEMENT = 32


def lease_statement(
    table: Table, candidates: Select[Any], postgresql: bool, **values: Any
) -> Update:
    """UPDATE setting ``values`` on the candidate rows nobody else holds, returning their ids.

    PostgreSQL: the candidates are locked with SKIP LOCKED, so concurrent workers take disjoint
    rows. SQLite: write transactions are serialised (BEGIN IMMEDIATE), which gives the same.
    """
    if postgresql:
        candidates = candidates.with_for_update(skip_locked=True)
    id_column = table.c.id
    return (
        update(table)
        .where(id_column.in_(candidates.scalar_subquery()))
        .values(**values)
        .returning(id_column)
    )


def lease(conn: Connection, table: Table, candidates: Select[Any], **values: Any) -> list[Any]:
    """Set ``values`` on the candidate rows nobody else holds; return their ids (see
    ``lease_statement``; this builds it per call)."""
    statement = lease_statement(table, candidates, conn.dialect.name == "postgresql", **values)
    return list(conn.execute(statement).scalars())


def distinct_values(column: Column[Any], *where: ColumnElement[bool]) -> Select[Any]:
    """The distinct values of ``column`` in the rows matching ``where``, ascending, as one
    column ``value``; read from an index that starts with ``column`` (and has the same
    condition) by jumping from one value to the next, so the cost grows with the number of
    values, not of rows.

    A recursive query: the "loose index scan" neither database does by itself. Measured on
    SQLite with 10,000 due messages of one account: 0.03 ms, where a window over them (ROW_NUMBER
    per account) took 20 ms.
    """
    step = select(column).where(*where).order_by(column).limit(1)
    found = select(step.scalar_subquery().label("value")).cte("found", recursive=True)
    found = found.union_all(
        select(step.where(column > found.c.value).scalar_subquery()).where(
            found.c.value.is_not(None)
        )
    )
    return select(found.c.value).where(found.c.value.is_not(None))


Heads = Select[Any] | CompoundSelect[Any]


def heads_statement(head: Callable[[Callable[[str], Any]], Select[Any]], count: int) -> Heads:
    """``count`` heads in one statement (UNION ALL): ``head(param)`` builds one, naming its own
    parameters ``param(name)``; each part gets its own (``name_0``, ``name_1`` ...)."""

    def part(n: int) -> Select[Any]:
        def param(name: str) -> Any:
            return bindparam(f"{name}_{n}")

        return head(param).subquery().select()

    parts = [part(n) for n in range(count)]
    return union_all(*parts) if count > 1 else parts[0]


def read_heads(
    conn: Connection,
    statement: Callable[[int], Heads],
    parts: Sequence[Mapping[str, Any]],
    shared: Mapping[str, Any],
) -> Iterator[Sequence[Any]]:
    """Run ``statement(count)`` (cached by the caller) over ``parts``, each one head's
    parameters, with ``shared`` for all of them, at most HEADS_PER_STATEMENT at a time."""
    for start in range(0, len(parts), HEADS_PER_STATEMENT):
        chunk = parts[start : start + HEADS_PER_STATEMENT]
        values = dict(shared)
        for n, part in enumerate(chunk):
            values.update({f"{name}_{n}": value for name, value in part.items()})
        yield from conn.execute(statement(len(chunk)), values)
