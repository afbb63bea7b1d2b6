"""OAuth2 client-credentials tokens, with the documentation's rules.

- **Single active token**: while an application's token is valid, asking again returns that same
  token with its remaining lifetime (re-derived from the client secret, see ``credentials``).
- **Revocation** (RFC 7009) deletes the token; the next request issues a new one.
- If the client secret changed since a token was issued, the old token cannot be re-derived: it
  is replaced by a new one (the old one stops working at once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from m2m import credentials
from m2m.clock import Clock
from m2m.errors import InvalidClient, UnsupportedTokenType
from m2m.storage import accounts as account_store
from m2m.storage.engine import single_statement_reads, write_transaction

SCOPE = "openid"
_MAX_RACES = 5


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str = SCOPE


class TokenService:
    def __init__(self, engine: Engine, clock: Clock, ttl_seconds: int) -> None:
        self._engine = engine
        self._reads = single_statement_reads(engine)
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_seconds)

    # ``authenticate_client`` and ``current_token`` are one indexed read each: callers may run
    # them on the event loop. ``issue`` may write (SQLite's write lock can wait): not there.

    def authenticate_client(self, client_id: str, client_secret: str) -> account_store.App:
        """The application these credentials belong to; ``InvalidClient`` if they are wrong."""
        app = None
        if "\x00" not in client_id:  # no stored id has one, and PostgreSQL text cannot hold it
            app = account_store.find_app(self._reads, client_id)
        # Hash the secret even for an unknown client, so timing does not tell which ids exist.
        stored = app.secret_digest if app else credentials.digest("")
        if not credentials.matches(client_secret, stored) or app is None:
            raise InvalidClient("Client authentication failed: unknown client or wrong secret.")
        return app

    def current_token(self, app: account_store.App, client_secret: str) -> IssuedToken | None:
        """The app's valid token, if it has one (the common case). ``client_secret`` must be
        authenticated."""
        return self._reuse(account_store.read_app_token(self._reads, app.id), client_secret)

    def issue(self, app: account_store.App, client_secret: str) -> IssuedToken:
        """The app's valid token, or a new one. ``client_secret`` must be authenticated."""
        issued = self.current_token(app, client_secret)
        if issued is not None:
            return issued
        for _ in range(_MAX_RACES):
            with write_transaction(self._engine) as conn:
                current = account_store.current_app_token(conn, app.id)
                issued = self._reuse(current, client_secret)
                if issued is not None:
                    return issued
                now = self._clock.now()
                salt = credentials.new_salt()
                token = credentials.derive_access_token(client_secret, salt)
                new = account_store.AppToken(credentials.digest(token), salt, now + self._ttl)
                stale = current.digest if current else None
                if account_store.replace_app_token(conn, app, stale, new, now):
                    return IssuedToken(token, self._expires_in(new))
        raise RuntimeError("could not issue a token: too many concurrent issuers")

    def _reuse(
        self, current: account_store.AppToken | None, client_secret: str
    ) -> IssuedToken | None:
        if current is None or current.expires_at <= self._clock.now():
            return None
        token = credentials.derive_access_token(client_secret, current.salt)
        if not credentials.matches(token, current.digest):
            return None  # the secret was rotated: this token cannot be handed back
        return IssuedToken(token, self._expires_in(current))

    def _expires_in(self, token: account_store.AppToken) -> int:
        remaining = (token.expires_at - self._clock.now()).total_seconds()
        return max(1, math.ceil(remaining))

    def revoke(self, app: account_store.App, token: str) -> None:
        """RFC 7009: unknown, expired, already revoked or other clients' tokens are no error.

        A permanent token of the client's own account is not revoked here (the documentation
        manages them from the dashboard): ``unsupported_token_type`` says so, as RFC 7009
        §2.2.1 has it, rather than a 200 that leaves the token working. Another account's
        permanent token is answered like any unknown token, so the answer reveals nothing.
        """
        digest = credentials.digest(token)
        with write_transaction(self._engine) as conn:
            if account_store.delete_app_token(conn, app.id, digest):
                return
            if account_store.is_permanent_token_of(conn, app.account_id, digest):
                raise UnsupportedTokenType(
                    "This is a permanent token: /revoke revokes access tokens only. Delete a "
                    "permanent token from the console's TOKEN page (or with "
                    "`m2m admin tokens delete`)."
                )
