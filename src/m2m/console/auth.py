"""Logging in and out, and finding the session behind a request's cookie.

A session id is 256 random bits, sent only in an HttpOnly, SameSite cookie (Secure over HTTPS)
and stored only as its SHA-256 digest, so a database dump holds no usable session and logging
out (deleting the row) ends it everywhere. A new id is issued at every login (no fixation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from m2m import credentials
from m2m.clock import Clock
from m2m.console import login_throttle
from m2m.console.users import hasher, normalize_email, password_matches
from m2m.storage import auth_failures
from m2m.storage import console as console_store
from m2m.storage.engine import write_transaction

SESSION_COOKIE = "m2m_console"
# Touching last_seen_at on every page would be a write per click; once a minute is precise
# enough for an idle timeout counted in minutes.
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class SessionRules:
    lifetime: timedelta
    idle: timedelta
    lock: timedelta


@dataclass(frozen=True, slots=True)
class LoginResult:
    session_token: str | None = None  # set on success
    retry_after: int = 0  # > 0: refused by the throttle, password not checked


KEY_PREFIX = "console:"  # this throttle's keys among all the failures counted


def _keys(email: str, address: str) -> tuple[str, str]:
    return f"{KEY_PREFIX}email:{email}", f"{KEY_PREFIX}addr:{address}"


def log_in(
    engine: Engine, clock: Clock, rules: SessionRules, email: str, password: str, address: str
) -> LoginResult:
    """Check the throttle, then the password; on success open a new session."""
    email = normalize_email(email)
    email_key, address_key = _keys(email, address)
    now = clock.now()
    since = now - login_throttle.counted_period(rules.lock)
    with engine.connect() as conn:
        wait = max(
            login_throttle.per_email_policy(rules.lock).wait(
                auth_failures.recent_failures(conn, email_key, since), now
            ),
            login_throttle.per_address_policy(rules.lock).wait(
                auth_failures.recent_failures(conn, address_key, since), now
            ),
        )
        user = console_store.find_user(conn, email) if wait == 0 else None
    if wait:
        return LoginResult(retry_after=wait)
    # Checked for an unknown email too (against a decoy hash): skipping the check answered
    # an unknown email 40 times faster than a known one with a wrong password.
    matches = password_matches(user.password_hash if user else None, password)
    if user is None or not matches:
        with write_transaction(engine) as conn:
            auth_failures.forget_failures_before(conn, since, KEY_PREFIX)
            auth_failures.add_failures(conn, [email_key, address_key], now)
        return LoginResult()
    token = credentials.new_secret()
    new_hash = hasher.hash(password) if hasher.check_needs_rehash(user.password_hash) else None
    with write_transaction(engine) as conn:
        # Whoever knows the password may clear the email's count; the address's stays, or an
        # attacker with an account of their own could interleave successes to keep guessing.
        auth_failures.clear_failures(conn, email_key)
        console_store.record_login(conn, user.id, new_hash or user.password_hash, now)
        console_store.delete_expired_sessions(conn, now)
        console_store.add_session(
            conn, user.id, credentials.digest(token), now, now + rules.lifetime
        )
    return LoginResult(session_token=token)


def session_user(
    engine: Engine, clock: Clock, rules: SessionRules, token: str | None
) -> console_store.SessionUser | None:
    """The live session's user, or None (no cookie, unknown, expired or idle too long)."""
    if not token:
        return None
    now = clock.now()
    digest = credentials.digest(token)
    with engine.connect() as conn:
        found = console_store.find_session(conn, digest, now)
    if found is None:
        return None
    if now - found.last_seen_at > rules.idle:
        log_out(engine, token)
        return None
    if now - found.last_seen_at > _TOUCH_EVERY:
        with write_transaction(engine) as conn:
            console_store.touch_session(conn, found.session_id, now)
    return found


def log_out(engine: Engine, token: str) -> None:
    with write_transaction(engine) as conn:
        console_store.delete_session(conn, credentials.digest(token))
