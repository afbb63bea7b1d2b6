"""Console users: an email and an Argon2id password hash, belonging to one account."""

from __future__ import annotations

import re
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from m2m.audit import Actor, created
from m2m.clock import Clock
from m2m.errors import BadRequest, NotFound
from m2m.storage import accounts as account_store
from m2m.storage import audit as audit_store
from m2m.storage import console as console_store
from m2m.storage.engine import write_transaction

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # Argon2 takes any length; this only bounds the work per attempt
MAX_EMAIL_LENGTH = 320
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")

hasher = PasswordHasher()  # argon2-cffi's defaults: Argon2id, RFC 9106's low-memory profile


def normalize_email(raw: str) -> str:
    return raw.strip().lower()


def email_problem(email: str) -> str | None:
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(email):
        return "enter an email address such as name@example.com"
    return None


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"the password must have at most {MAX_PASSWORD_LENGTH} characters"
    return None


def generate_password() -> str:
    return secrets.token_urlsafe(15)  # 120 bits, 20 characters


def create_user(
    engine: Engine, clock: Clock, account_id: int, email: str, password: str, *, actor: Actor
) -> int:
    email = normalize_email(email)
    problem = email_problem(email) or password_problem(password)
    if problem:
        raise BadRequest(problem[0].upper() + problem[1:] + ".")
    password_hash = hasher.hash(password)
    try:
        with write_transaction(engine) as conn:
            if account_store.get_account(conn, account_id) is None:
                raise NotFound(f"No account with id {account_id}.")
            user_id = console_store.add_user(conn, account_id, email, password_hash, clock.now())
            audit_store.record(
                conn,
                account_id=account_id,
                actor=actor,
                action="console_user.created",
                subject_kind="console_user",
                subject=email,
                changes=created(email=email),
                now=clock.now(),
            )
            return user_id
    except IntegrityError as error:
        raise BadRequest(f"A console user with email {email} exists already.") from error


@cache
def _decoy_hash() -> str:
    return hasher.hash(secrets.token_urlsafe(16))


def password_matches(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the user exists: an unknown email is checked against a
    decoy hash, so response times do not tell which emails have accounts."""
    try:
        return hasher.verify(password_hash or _decoy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False
