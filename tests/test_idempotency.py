"""Idempotency keys: the rules (m2m.idempotency, pure) and their storage, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from m2m.clock import ManualClock
from m2m.idempotency import (
    KEY_LIFETIME,
    LOCK_DURATION,
    StoredKey,
    Verdict,
    decide,
    key_problem,
    replayed_headers,
    request_digest,
    retry_after_seconds,
)
from m2m.storage import idempotency as key_store
from m2m.storage.engine import write_transaction
from tests.support.tenants import Tenant

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
DIGEST = request_digest("POST", "/m2m/1.0.0/requests/activation", b"[]")


def key(
    *,
    digest: bytes = DIGEST,
    age: timedelta = timedelta(0),
    locked_for: timedelta | None = None,
    status: int | None = None,
) -> StoredKey:
    locked_until = NOW + locked_for if locked_for is not None else None
    return StoredKey(digest, NOW - age, locked_until, status, None, None)


@pytest.mark.parametrize("value", ["a", "x" * 255, "order-42/retry", " spaced key ", "~!@#$%^&*()"])
def test_keys_are_1_to_255_printable_ascii_characters(value: str) -> None:
    assert key_problem(value) is None


@pytest.mark.parametrize("value", ["", "x" * 256, "caf\u00e9", "tab\there", "nul\x00", "\x7f"])
def test_other_keys_are_refused_naming_the_header(value: str) -> None:
    problem = key_problem(value)
    assert problem is not None
    assert "Idempotency-Key" in problem


def test_the_digest_covers_method_path_and_body() -> None:
    assert request_digest("post", "/a", b"x") == request_digest("POST", "/a", b"x")
    others = {
        request_digest("PATCH", "/a", b"x"),
        request_digest("POST", "/b", b"x"),
        request_digest("POST", "/a", b"y"),
        request_digest("POST", "/ax", b""),  # no ambiguity where one part ends
    }
    assert len(others) == 4
    assert request_digest("POST", "/a", b"x") not in others


@pytest.mark.parametrize(
    ("stored", "verdict"),
    [
        (None, Verdict.RUN),
        (key(status=202), Verdict.REPLAY),
        (key(status=422), Verdict.REPLAY),  # a 4xx is an answer like any other
        (key(digest=b"other", status=202), Verdict.MISMATCH),
        (key(locked_for=timedelta(seconds=5)), Verdict.IN_PROGRESS),
        (key(digest=b"other", locked_for=timedelta(seconds=5)), Verdict.MISMATCH),
        (key(locked_for=timedelta(seconds=-1)), Verdict.RUN),  # the first attempt died
        (key(age=KEY_LIFETIME, status=202), Verdict.RUN),  # expired: as good as absent
        (key(age=KEY_LIFETIME, digest=b"other", status=202), Verdict.RUN),
        (key(age=KEY_LIFETIME - timedelta(seconds=1), status=202), Verdict.REPLAY),
    ],
)
def test_decide(stored: StoredKey | None, verdict: Verdict) -> None:
    assert decide(stored, DIGEST, NOW) is verdict


def test_retry_after_is_when_the_lock_ends() -> None:
    assert retry_after_seconds(key(locked_for=timedelta(seconds=7.2)), NOW) == 8
    assert retry_after_seconds(key(locked_for=timedelta(seconds=-3)), NOW) == 1


def test_only_the_headers_that_make_the_answer_are_recorded() -> None:
    headers = {"Content-Type": "application/json", "ETag": '"2"', "RateLimit-Remaining": "3"}
    assert replayed_headers(headers) == {"Content-Type": "application/json", "ETag": '"2"'}


def test_claim_finish_and_release(engine: Engine, clock: ManualClock, tenant: Tenant) -> None:
    account = tenant.account_id

    def claim(digest: bytes = DIGEST) -> Verdict:
        with write_transaction(engine) as conn:
            return key_store.claim(conn, account, "k", digest, clock.now())[0]

    assert claim() is Verdict.RUN
    assert claim() is Verdict.IN_PROGRESS
    assert claim(b"x" * 32) is Verdict.MISMATCH
    with write_transaction(engine) as conn:
        key_store.release(conn, account, "k")
        assert key_store.find(conn, account, "k") is None
    assert claim() is Verdict.RUN
    with write_transaction(engine) as conn:
        key_store.finish(conn, account, "k", 202, {"content-type": "application/json"}, b"{}")
        # Releasing a finished key does nothing: its answer stands.
        key_store.release(conn, account, "k")
    assert claim() is Verdict.REPLAY
    with engine.connect() as conn:
        stored = key_store.find(conn, account, "k")
    assert stored is not None
    assert (stored.status_code, stored.headers, stored.body, stored.locked_until) == (
        202,
        {"content-type": "application/json"},
        b"{}",
        None,
    )
    clock.advance(KEY_LIFETIME.total_seconds())
    assert claim(b"y" * 32) is Verdict.RUN  # expired: replaced by the new request


def test_a_crashed_claim_frees_its_key_when_its_lock_ends(
    engine: Engine, clock: ManualClock, tenant: Tenant
) -> None:
    with write_transaction(engine) as conn:
        key_store.claim(conn, tenant.account_id, "k", DIGEST, clock.now())
    clock.advance(LOCK_DURATION.total_seconds())
    with write_transaction(engine) as conn:
        verdict, _ = key_store.claim(conn, tenant.account_id, "k", DIGEST, clock.now())
    assert verdict is Verdict.RUN


def test_keys_are_per_account(
    engine: Engine, clock: ManualClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    for account in (tenant.account_id, other_tenant.account_id):
        with write_transaction(engine) as conn:
            assert key_store.claim(conn, account, "k", DIGEST, clock.now())[0] is Verdict.RUN
