"""Idempotency keys (``m2m.idempotency`` has the rules): read one, take one, record its answer.

A replay is one indexed read (``find``). Taking a key (``claim``) is a write transaction that
decides again under the row's lock, so of two requests racing with one key exactly one runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from m2m.idempotency import LOCK_DURATION, StoredKey, Verdict, decide
from m2m.storage.prepared import PreparedRead
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


def find(conn: Connection, account_id: int, key: str, *, lock: bool = False) -> StoredKey | None:
    """The key's row (locked for the transaction with ``lock``, on PostgreSQL), or None."""
    query = _FIND_LOCKED if lock and conn.dialect.name == "postgresql" else _FIND
    row = conn.execute(query, {"account_id": account_id, "key": key}).one_or_none()
    return None if row is None else _stored_key(row)


# Built once: building a statement per call cost more than running it.
_INSERT = insert(idempotency_keys)
_FINISH = (
    update(idempotency_keys)
    .where(_t.account_id == bindparam("b_account_id"), _t.key == bindparam("b_key"))
    .values(
        status_code=bindparam("b_status_code", type_=_t.status_code.type),
        response_headers=bindparam("b_headers", type_=_t.response_headers.type),
        response_body=bindparam("b_body", type_=_t.response_body.type),
        locked_until=None,
    )
)


def claim(
    conn: Connection, account_id: int, key: str, digest: bytes, now: datetime
) -> tuple[Verdict, StoredKey | None]:
    """Take the key for a request with ``digest``, in ``conn``'s write transaction: RUN when
    taken (the caller then does the work and calls ``finish`` or ``release``), otherwise what
    the row says (see ``m2m.idempotency.decide``) with the row."""
    stored = find(conn, account_id, key, lock=True)
    if stored is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    _INSERT,
                    {
                        "account_id": account_id,
                        "key": key,
                        "request_digest": digest,
                        "created_at": now,
                        "locked_until": now + LOCK_DURATION,
                    },
                )
        except IntegrityError:
            # Another request inserted it after our read (PostgreSQL; SQLite's write lock
            # serialises claims): decide on its row.
            stored = find(conn, account_id, key, lock=True)
        else:
            return Verdict.RUN, None
    verdict = decide(stored, digest, now)
    if verdict is Verdict.RUN:  # an expired key, or a first attempt that died: start afresh
        conn.execute(
            update(idempotency_keys)
            .where(_t.account_id == account_id, _t.key == key)
            .values(
                request_digest=digest,
                created_at=now,
                locked_until=now + LOCK_DURATION,
                status_code=None,
                response_headers=None,
                response_body=None,
            )
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
    conn.execute(
        _FINISH,
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
    conn.execute(
        delete(idempotency_keys).where(
            _t.account_id == account_id, _t.key == key, _t.status_code.is_(None)
        )
    )
