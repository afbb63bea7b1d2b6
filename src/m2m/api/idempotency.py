"""The ``Idempotency-Key`` header of the M2M API's writes (``m2m.idempotency`` has the rules).

A route that writes wraps its work in ``idempotent_write`` (or ``idempotent``): without the header
the work simply runs; with it, a retry of a finished request gets the recorded answer back (one
indexed read) with ``Idempotent-Replayed: true``, and the work runs at most once per key.

``idempotent_write`` is for work done in one database transaction (a lifecycle request, a SIM
update): the key is claimed, the work done and its answer recorded in that same transaction, so
the answer is recorded exactly when the work commits; a concurrent retry waits for the lock and
gets the answer. ``idempotent`` is for work that must not hold the write lock (saving the
callback configuration first checks the URL, which may resolve a name): it claims the key in one
transaction, runs the work, and records the answer in another; a retry meanwhile gets 409.

Wrappers the routes call rather than a middleware: only these routes pay for them, and each hands
over the body it has read anyway, after its credentials were checked.

``/token`` and ``/revoke`` take no key: they are OAuth2's endpoints, idempotent by their own
rules (the single active token comes back while it is valid; revoking twice answers 200 twice),
and OAuth2 clients would not send one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from m2m.api.error_handlers import EXCEPTION_HANDLERS
from m2m.errors import BadRequest, Conflict, M2MError
from m2m.idempotency import (
    HEADER,
    KEY_PATTERN,
    StoredKey,
    Verdict,
    decide,
    key_problem,
    replayed_headers,
    request_digest,
    retry_after_seconds,
)
from m2m.services import Services
from m2m.storage import idempotency as key_store
from m2m.storage.engine import write_transaction

REPLAYED_HEADER = "Idempotent-Replayed"

IDEMPOTENCY_DESCRIPTION = (
    "Makes a retry safe: the same key with the same request within 24 hours answers the first "
    "request's answer again (with Idempotent-Replayed: true) without doing the work twice; with "
    "another request, 422; while the first still runs, the retry waits for its answer or is "
    "answered 409 (with Retry-After). 1 to 255 printable ASCII characters, per account."
)
IdempotencyKey = Annotated[
    str | None, Header(alias=HEADER, pattern=KEY_PATTERN, description=IDEMPOTENCY_DESCRIPTION)
]


async def _answer_for(request: Request, error: Exception) -> Response:
    """The answer the app's exception handlers give ``error``, to record it."""
    for kind in type(error).__mro__:
        handler = EXCEPTION_HANDLERS.get(kind)
        if handler is not None:
            return await handler(request, error)
    raise error  # pragma: no cover - EXCEPTION_HANDLERS handles Exception


def _replay(stored: StoredKey) -> Response:
    assert stored.status_code is not None
    headers = {**(stored.headers or {}), REPLAYED_HEADER: "true"}
    return Response(stored.body or b"", status_code=stored.status_code, headers=headers)


def _refusal(verdict: Verdict, stored: StoredKey | None, services: Services) -> Exception:
    if verdict is Verdict.MISMATCH:
        return BadRequest(
            f"This {HEADER} was used for a different request (method, path or body) in the "
            "last 24 hours; use a new key for a new request.",
            code="idempotency_key_reused",
        )
    assert stored is not None
    return Conflict(
        f"A request with this {HEADER} is still being processed; retry later.",
        retry_after_seconds(stored, services.clock.now()),
    )


def _unless_run(verdict: Verdict, stored: StoredKey | None, services: Services) -> Response | None:
    """None when the request is to run; the recorded answer to replay; or the refusal raised."""
    if verdict is Verdict.RUN:
        return None
    if verdict is Verdict.REPLAY:
        assert stored is not None
        return _replay(stored)
    raise _refusal(verdict, stored, services)


def _seen_before(
    request: Request, services: Services, account_id: int, key: str, body: bytes
) -> tuple[bytes, Response | None]:
    """The request's digest and, if its key already settles it, the answer to replay (a key
    used for another request, or still running, is refused here)."""
    problem = key_problem(key)
    if problem:
        raise BadRequest(problem)
    digest = request_digest(request.method, request.url.path, body)
    # On the event loop, as the credentials' check: one indexed read costs less than a hop to
    # a thread and back.
    stored = key_store.lookup(services.reads, account_id, key)
    return digest, _unless_run(decide(stored, digest, services.clock.now()), stored, services)


async def idempotent(
    request: Request,
    services: Services,
    account_id: int,
    key: str | None,
    body: bytes,
    work: Callable[[], Awaitable[Response]],
) -> Response:
    """``work()``'s answer, run at most once per ``key`` (see the module)."""
    if key is None:
        return await work()
    digest, replay = _seen_before(request, services, account_id, key, body)
    if replay is not None:
        return replay

    def take() -> tuple[Verdict, StoredKey | None]:
        with write_transaction(services.engine) as conn:
            return key_store.claim(conn, account_id, key, digest, services.clock.now())

    replay = _unless_run(*await run_in_threadpool(take), services)
    if replay is not None:  # finished between our read and our claim
        return replay
    try:
        try:
            response = await work()
        except Exception as error:  # answered as the app would answer it, and recorded
            response = await _answer_for(request, error)
    except BaseException:
        await run_in_threadpool(_release, services, account_id, key)
        raise
    if response.status_code >= 500:  # nothing lasting was done: a retry may run again
        await run_in_threadpool(_release, services, account_id, key)
        return response
    headers = replayed_headers(dict(response.headers))
    await run_in_threadpool(_finish, services, account_id, key, response, headers)
    return response


def _error_answer(error: M2MError) -> Response:
    """What the app's handler answers an ``M2MError`` (``error_handlers``), built in a thread."""
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


async def idempotent_write(
    request: Request,
    services: Services,
    account_id: int,
    key: str | None,
    body: bytes,
    work: Callable[[Connection], Response],
    *,
    refuses_before_writing: bool = False,
) -> Response:
    """``work(conn)``'s answer, run on a write transaction (in the thread pool) that also
    records it under ``key``: at most once per key, atomically (see the module).

    A refusal (an ``M2MError`` below 500) is recorded as the key's answer and the transaction
    commits, so whatever the work wrote before refusing is undone by a savepoint around it.
    ``refuses_before_writing``: the work only ever refuses before its first write, so there is
    nothing to undo and no savepoint (two statements fewer on every keyed request)."""
    if key is None:

        def plain() -> Response:
            with write_transaction(services.engine) as conn:
                return work(conn)

        return await run_in_threadpool(plain)
    digest, replay = _seen_before(request, services, account_id, key, body)
    if replay is not None:
        return replay

    def run() -> Response:
        with write_transaction(services.engine) as conn:
            claimed = key_store.claim(conn, account_id, key, digest, services.clock.now())
            replay = _unless_run(*claimed, services)
            if replay is not None:  # finished while we waited for the lock
                return replay
            try:
                if refuses_before_writing:
                    response = work(conn)
                else:
                    with conn.begin_nested():  # a refusal undoes the work, not the claim
                        response = work(conn)
            except M2MError as error:
                if error.status_code >= 500:
                    raise  # the transaction rolls back: the key stays free
                response = _error_answer(error)
            headers = replayed_headers(dict(response.headers))
            key_store.finish(
                conn, account_id, key, response.status_code, headers, bytes(response.body)
            )
            return response

    return await run_in_threadpool(run)


def _release(services: Services, account_id: int, key: str) -> None:
    with write_transaction(services.engine) as conn:
        key_store.release(conn, account_id, key)


def _finish(
    services: Services, account_id: int, key: str, response: Response, headers: dict[str, str]
) -> None:
    with write_transaction(services.engine) as conn:
        key_store.finish(conn, account_id, key, response.status_code, headers, bytes(response.body))
