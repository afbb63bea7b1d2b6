"""Idempotency keys (``m2m.idempotency`` has the rules): read one, take one, record its answer.

A replay is one indexed read (``find``). Taking a key (``claim``) is a write transaction that
decides again under the row's lock, so of two requests racing with one key exactly one runs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from m2m.idempotency import LOCK_DURATION, StoredKey, Verdict, decide
from m2m.storage.tables import idempotency_keys

_t = idempotency_keys.c


def find(conn: Connection, account_id: int, key: str, *, lock: bool = False) -> StoredKey | None:
    """The key's row (locked for the transaction with ``lock``, on PostgreSQL), or None."""
    query = select(
        _t.request_digest,
        _t.created_at,
        _t.locked_until,
        _t.status_code,
        _t.response_headers,
        _t.response_body,
    ).where(_t.account_id == account_id, _t.key == key)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).one_or_none()
    if row is None:
        return None
    digest, created_at, locked_until, status, headers, body = row
    return StoredKey(bytes(digest), created_at, locked_until, status, headers, body)


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
                    insert(idempotency_keys).values(
                        account_id=account_id,
                        key=key,
                        request_digest=digest,
                        created_at=now,
                        locked_until=now + LOCK_DURATION,
                    )
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
        update(idempotency_keys)
        .where(_t.account_id == account_id, _t.key == key)
        .values(
            status_code=status_code, response_headers=headers, response_body=body, locked_until=None
        )
    )


def release(conn: Connection, account_id: int, key: str) -> None:
    """Give the key up (its request failed without doing anything lasting): a retry runs."""
    conn.execute(
        delete(idempotency_keys).where(
            _t.account_id == account_id, _t.key == key, _t.status_code.is_(None)
        )
    )
