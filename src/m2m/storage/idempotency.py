"""Idempotency keys (``m2m.idempotency`` has the rules): read one, take one, record its answer.

A replay is one indexed read (``find``). Taking a key (``claim``) is a write transaction that
decides again under the row's lock, so of two requests racing with one key exactly one runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from m2m.idempotency import LOCK_DURATION, StoredKey, Verdict, decide
from m2m.storage.prepared import PreparedRead, PreparedStatement, insert_values
from m2m.storage.tables import idempotency_keys

_t = idempotency_keys.c
_COLUMNS = (
    _t.request_digest,
    _t.created_at,
    _t.locked_until,
    _t.status_code,
    _t.response_headers,
    _t.response_body,
)
_FIND = select(*_COLUMNS).where(
    _t.account_id == bindparam("account_id"), _t.key == bindparam("key")
)
_lookup = PreparedRead(_FIND)


def _stored_key(row: Sequence[Any]) -> StoredKey:
    digest, created_at, locked_until, status, headers, body = row
    return StoredKey(bytes(digest), created_at, locked_until, status, headers, body)


def lookup(engine: Engine, account_id: int, key: str) -> StoredKey | None:
    """The key's row, or None: the replay's one read (a prepared statement, no transaction)."""
    row = _lookup.one_or_none(engine, {"account_id": account_id, "key": key})
    return None if row is None else _stored_key(row)


_FIND_LOCKED = _FIND.with_for_update()


_find = {False: PreparedStatement(_FIND), True: PreparedStatement(_FIND_LOCKED)}


def find(conn: Connection, account_id: int, key: str, *, lock: bool = False) -> StoredKey | None:
    """The key's row (locked for the transaction with ``lock``, on PostgreSQL), or None."""
    query = _find[lock and conn.dialect.name == "postgresql"]
    row = query.first(conn, {"account_id": account_id, "key": key})
    return None if row is None else _stored_key(row)


# Built once and prepared (``storage.prepared``): every keyed write runs two of these, and
# building or executing them through SQLAlchemy cost more than running them.
_FINISH = PreparedStatement(
    update(idempotency_keys)
    .where(_t.account_id == bindparam("b_account_id"), _t.key == bindparam("b_key"))
    .values(
        status_code=bindparam("b_status_code", type_=_t.status_code.type),
        response_headers=bindparam("b_headers", type_=_t.response_headers.type),
        response_body=bindparam("b_body", type_=_t.response_body.type),
        locked_until=None,
    )
)
# Taking a new key is one statement: the insert does nothing when the key exists (then the row
# decides). A read first, then an insert in a savepoint in case another request inserted in
# between, was four statements, and the savepoint's two cost as much as the rest.
_TAKE = {
    dialect: PreparedStatement(
        insert_values(
            idempotency_keys,
            ("account_id", "key", "request_digest", "created_at", "locked_until"),
            insert_=module.insert,
        )
        .on_conflict_do_nothing(index_elements=[_t.account_id, _t.key])
        # A row back when it inserted (the drivers' rowcount is not reliable: psycopg's is -1)
        .returning(_t.account_id)
    )
    for dialect, module in (("sqlite", sqlite), ("postgresql", postgresql))
}
_RELEASE = delete(idempotency_keys).where(
    _t.account_id == bindparam("b_account_id"),
    _t.key == bindparam("b_key"),
    _t.status_code.is_(None),
)
_RESTART = (
    update(idempotency_keys)
    .where(_t.account_id == bindparam("b_account_id"), _t.key == bindparam("b_key"))
    .values(
        request_digest=bindparam("b_digest", type_=_t.request_digest.type),
        created_at=bindparam("b_created_at", type_=_t.created_at.type),
        locked_until=bindparam("b_locked_until", type_=_t.locked_until.type),
        status_code=None,
        response_headers=None,
        response_body=None,
    )
)


def claim(
    conn: Connection, account_id: int, key: str, digest: bytes, now: datetime
) -> tuple[Verdict, StoredKey | None]:
    """Take the key for a request with ``digest``, in ``conn``'s write transaction: RUN when
    taken (the caller then does the work and calls ``finish`` or ``release``), otherwise what
    the row says (see ``m2m.idempotency.decide``) with the row."""
    row = {
        "account_id": account_id,
        "key": key,
        "request_digest": digest,
        "created_at": now,
        "locked_until": now + LOCK_DURATION,
    }
    while True:
        if _TAKE[conn.dialect.name].first(conn, row) is not None:
            return Verdict.RUN, None
        # The key exists (on PostgreSQL, a concurrent holder's insert made this one wait for
        # its transaction to end): decide on its row, locked. Gone again (released by a
        # holder that failed): try to take it again.
        stored = find(conn, account_id, key, lock=True)
        if stored is not None:
            break
    verdict = decide(stored, digest, now)
    if verdict is Verdict.RUN:  # an expired key, or a first attempt that died: start afresh
        conn.execute(
            _RESTART,
            {
                "b_account_id": account_id,
                "b_key": key,
                "b_digest": digest,
                "b_created_at": now,
                "b_locked_until": now + LOCK_DURATION,
            },
        )
    return verdict, stored


def finish(
    conn: Connection,
    account_id: int,
    key: str,
    status_code: int,
    headers: dict[str, str],
    body: bytes,
) -> None:
    """Record the answer of the request that holds the key: retries get it from now on."""
    _FINISH.run(
        conn,
        {
            "b_account_id": account_id,
            "b_key": key,
            "b_status_code": status_code,
            "b_headers": headers,
            "b_body": body,
        },
    )


def release(conn: Connection, account_id: int, key: str) -> None:
    """Give the key up (its request failed without doing anything lasting): a retry runs."""
    conn.execute(_RELEASE, {"b_account_id": account_id, "b_key": key})
