"""The operator's ingestion tokens (admin CLI): bearer tokens for the operator's own systems,
such as the mediation system that posts usage records. They open no customer's API and no
customer's credentials open the operator's endpoints."""

from __future__ import annotations

from sqlalchemy import Engine

from m2m import credentials
from m2m.clock import Clock
from m2m.errors import BadRequest, NotFound
from m2m.freetext import name_problem
from m2m.storage import operator_tokens as token_store
from m2m.storage.engine import write_transaction
from m2m.storage.operator_tokens import OperatorToken
from m2m.storage.tables import NAME_LENGTH

HINT_LENGTH = 10  # the prefix and the first characters: enough to tell tokens apart in a list


def create(engine: Engine, clock: Clock, name: str) -> tuple[int, str]:
    """A new token: (its id, the secret, shown once: only its digest is stored)."""
    problem = name_problem("name", name, NAME_LENGTH)
    if problem:
        raise BadRequest(problem)
    secret = credentials.new_secret(credentials.OPERATOR_TOKEN_PREFIX)
    with write_transaction(engine) as conn:
        token_id = token_store.create(
            conn, name.strip(), credentials.digest(secret), secret[:HINT_LENGTH], clock.now()
        )
    return token_id, secret


def revoke(engine: Engine, clock: Clock, token_id: int) -> None:
    with write_transaction(engine) as conn:
        if not token_store.revoke(conn, token_id, clock.now()):
            raise NotFound(f"No live operator token with id {token_id}.")


def list_all(engine: Engine) -> list[OperatorToken]:
    with engine.connect() as conn:
        return token_store.list_all(conn)


def is_valid(engine: Engine, token: str) -> bool:
    """Whether ``token`` is a live operator token (looked up by its digest)."""
    if not token.startswith(credentials.OPERATOR_TOKEN_PREFIX):
        return False  # a customer's token, an API key: never one of these
    with engine.connect() as conn:
        return token_store.is_live(conn, credentials.digest(token))
