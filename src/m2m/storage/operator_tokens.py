"""The operator's ingestion tokens: what its systems (a mediation system posting usage) present.
Stored as SHA-256 digests; looked up by digest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from m2m.storage.tables import operator_tokens


@dataclass(frozen=True, slots=True)
class OperatorToken:
    id: int
    name: str
    hint: str
    created_at: datetime
    revoked_at: datetime | None


_COLUMNS = (
    operator_tokens.c.id,
    operator_tokens.c.name,
    operator_tokens.c.hint,
    operator_tokens.c.created_at,
    operator_tokens.c.revoked_at,
)


def create(conn: Connection, name: str, digest: bytes, hint: str, now: datetime) -> int:
    values = {"name": name, "token_digest": digest, "hint": hint, "created_at": now}
    inserted = conn.execute(insert(operator_tokens).values(values).returning(operator_tokens.c.id))
    return int(inserted.scalar_one())


def list_all(conn: Connection) -> list[OperatorToken]:
    rows = conn.execute(select(*_COLUMNS).order_by(operator_tokens.c.id))
    return [OperatorToken(*row) for row in rows]


def revoke(conn: Connection, token_id: int, now: datetime) -> bool:
    result = conn.execute(
        update(operator_tokens)
        .where(operator_tokens.c.id == token_id, operator_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


def is_live(conn: Connection, digest: bytes) -> bool:
    """Whether a token with this digest exists and is not revoked."""
    found = conn.execute(
        select(operator_tokens.c.id).where(
            operator_tokens.c.token_digest == digest, operator_tokens.c.revoked_at.is_(None)
        )
    ).first()
    return found is not None
