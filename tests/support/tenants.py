"""Accounts with one of each credential, made straight through ``m2m.accounts``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from m2m import accounts
from m2m.audit import ADMIN_CLI
from m2m.clock import ManualClock


@dataclass(frozen=True)
class Tenant:
    """An account with one API key, one OAuth2 app and one permanent token."""

    account_id: int
    api_key: str
    client_id: str
    client_secret: str
    permanent_token: str


def make_tenant(engine: Engine, clock: ManualClock, name: str) -> Tenant:
    account = accounts.create_account(engine, clock, name, actor=ADMIN_CLI)
    client_id, client_secret = accounts.create_app(
        engine, clock, account.id, "app", actor=ADMIN_CLI
    )
    permanent = accounts.create_permanent_token(engine, clock, account.id, "ci", actor=ADMIN_CLI)
    return Tenant(account.id, account.secret, client_id, client_secret, permanent.secret)
