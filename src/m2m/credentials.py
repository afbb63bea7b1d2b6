"""Secrets: how they are made, stored and compared.

Every secret handed out (client secrets, access tokens, API keys) carries at least 256 bits from
``secrets`` and is stored only as its SHA-256 digest; a database dump holds no usable credential.
SHA-256 (not a slow password hash) is right here because these secrets are random, not chosen by
people: there is nothing to guess, and the hot path must verify one per request.

The documentation's "single active token" rule asks the server to hand back the *same* access
token while it is valid, which a server that keeps only digests cannot do by looking it up. So a
temporary token is derived: ``token = HMAC-SHA256(client_secret, salt)`` with a random salt kept
beside the digest. Only a caller who presents the client secret can re-derive it; the database
and the server's own configuration are not enough.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_BYTES = 32  # 256 bits
# Issued secrets start with these, so that secret scanners (and our own log filter,
# ``m2m.logs``) recognise them wherever they turn up.
API_KEY_PREFIX = "m2mk_"
CLIENT_SECRET_PREFIX = "m2ms_"  # noqa: S105
PERMANENT_TOKEN_PREFIX = "m2mt_"  # noqa: S105
OPERATOR_TOKEN_PREFIX = "m2mo_"  # noqa: S105 - the operator's ingestion tokens
PREFIXES = (API_KEY_PREFIX, CLIENT_SECRET_PREFIX, PERMANENT_TOKEN_PREFIX, OPERATOR_TOKEN_PREFIX)


def new_secret(prefix: str = "") -> str:
    """A fresh random secret, URL-safe, optionally prefixed so secret scanners can spot leaks."""
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def new_client_id() -> str:
    # Public identifier, but unguessable so it gives an attacker nothing to enumerate.
    return secrets.token_urlsafe(18)


def new_salt() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def digest(secret: str) -> bytes:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def matches(secret: str, stored_digest: bytes) -> bool:
    """Constant-time check of a presented secret against its stored digest."""
    return hmac.compare_digest(digest(secret), stored_digest)


def derive_access_token(client_secret: str, salt: bytes) -> str:
    mac = hmac.new(client_secret.encode("utf-8"), salt, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
