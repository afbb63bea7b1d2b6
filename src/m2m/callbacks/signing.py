"""The per-account signing secret of callback messages (Standard Webhooks), and which of its
versions sign a message. Pure.

The secret is derived from the server's secret key, so it is never stored:
``whsec_`` + base64(HMAC-SHA256(secret_key, "m2m-webhook-signing:<account>:<version>")); bumping
the version (``storage.callback_configs.bump_version``) rotates it. For a while after a rotation
(the overlap) each message carries two signatures, the new secret's and the previous one's,
space-separated as Standard Webhooks allows: a receiver still verifying with the old secret keeps
accepting messages until it switches.

An event subscription has its own secret (``subscription_signing_secret``), versioned and
rotated the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta


def signing_secret(secret_key: str, account_id: int, version: int) -> str:
    message = f"m2m-webhook-signing:{account_id}:{version}".encode()
    raw = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(raw).decode()


def subscription_signing_secret(secret_key: str, public_id: str, version: int) -> str:
    """An event subscription's secret: derived as the account's, under its own domain string
    and the subscription's public id (random, never reused, unlike a row id)."""
    message = f"m2m-event-subscription-signing:{public_id}:{version}".encode()
    raw = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(raw).decode()


def signing_versions(
    version: int, rotated_at: datetime | None, now: datetime, overlap: timedelta
) -> list[int]:
    """The secret versions a message is signed with: the current one, and the previous one
    while the last rotation is more recent than ``overlap``."""
    if version > 1 and rotated_at is not None and now < rotated_at + overlap:
        return [version, version - 1]
    return [version]
