"""CSRF tokens: every form carries one, bound to the session it was rendered for.

Signed-in forms: the token is HMAC-SHA256(session id, purpose), so nothing is stored, a token
from another session (or from before a new login) is worthless, and the token does not reveal
the session id. The login form has no session yet: it is protected by a double-submit cookie
(a random value in a SameSite cookie that must equal the form's field).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

FIELD = "csrf_token"
LOGIN_COOKIE = "m2m_login_csrf"
_PURPOSE = b"m2m-console-csrf"


def token_for_session(session_token: str) -> str:
    mac = hmac.new(session_token.encode(), _PURPOSE, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def session_token_matches(session_token: str, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(token_for_session(session_token).encode(), presented.encode())


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


def login_token_matches(cookie: str | None, presented: str | None) -> bool:
    if not cookie or not presented:
        return False
    return hmac.compare_digest(cookie.encode(), presented.encode())
