"""The web console's own data: its users, their sessions, and failed logins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from m2m.storage.tables import accounts, console_sessions, console_users


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    id: int
    account_id: int
    email: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class SessionUser:
    """Who a live session belongs to."""

    session_id: int
    user_id: int
    email: str
    account_id: int
    account_name: str
    subscription: str
    last_seen_at: datetime


# --- users ----------------------------------------------------------------------------------


def add_user(
    conn: Connection, account_id: int, email: str, password_hash: str, now: datetime
) -> int:
    result = conn.execute(
        insert(console_users).values(
            account_id=account_id, email=email, password_hash=password_hash, created_at=now
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def find_user(conn: Connection, email: str) -> ConsoleUser | None:
    row = conn.execute(
        select(
            console_users.c.id,
            console_users.c.account_id,
            console_users.c.email,
            console_users.c.password_hash,
        ).where(console_users.c.email == email)
    ).one_or_none()
    return ConsoleUser(**row._mapping) if row else None


def record_login(conn: Connection, user_id: int, password_hash: str, now: datetime) -> None:
    """Stamp the login, storing the hash again (it changes when its parameters are upgraded)."""
    conn.execute(
        update(console_users)
        .where(console_users.c.id == user_id)
        .values(last_login_at=now, password_hash=password_hash)
    )


# --- sessions -------------------------------------------------------------------------------


def add_session(
    conn: Connection, user_id: int, digest: bytes, now: datetime, expires_at: datetime
) -> None:
    conn.execute(
        insert(console_sessions).values(
            user_id=user_id,
            session_digest=digest,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
        )
    )


def find_session(conn: Connection, digest: bytes, now: datetime) -> SessionUser | None:
    row = conn.execute(
        select(
            console_sessions.c.id.label("session_id"),
            console_users.c.id.label("user_id"),
            console_users.c.email,
            accounts.c.id.label("account_id"),
            accounts.c.name.label("account_name"),
            accounts.c.subscription,
            console_sessions.c.last_seen_at,
        )
        .select_from(console_sessions.join(console_users).join(accounts))
        .where(console_sessions.c.session_digest == digest, console_sessions.c.expires_at > now)
    ).one_or_none()
    return SessionUser(**row._mapping) if row else None


def touch_session(conn: Connection, session_id: int, now: datetime) -> None:
    conn.execute(
        update(console_sessions).where(console_sessions.c.id == session_id).values(last_seen_at=now)
    )


def delete_session(conn: Connection, digest: bytes) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.session_digest == digest))


def delete_expired_sessions(conn: Connection, now: datetime) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now))
