"""Per-account request-rate limits: a token bucket per account, the IETF RateLimit headers on
every answer, 429 with Retry-After past the limit, set per account by the operator."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from m2m import accounts
from m2m.audit import ADMIN_CLI
from m2m.clock import ManualClock, SystemClock
from m2m.rate_limits import AccountBuckets, Bucket, RateLimit, spend
from m2m.storage import accounts as account_store
from tests.support.api import access_token, get_sim


def test_a_full_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    limit = RateLimit(per_second=2, burst=3)
    bucket: Bucket | None = None
    verdicts = []
    for _ in range(4):
        bucket, verdict = spend(bucket, limit, now=100.0)
        verdicts.append(verdict)
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert verdicts[-1].retry_after == 1
    assert verdicts[0].limit == 3
    assert verdicts[2].reset_seconds == 2  # 3 requests to refill at 2 a second
    assert bucket is not None
    bucket, later = spend(bucket, limit, now=100.5)  # one request's worth refilled
    assert later.allowed
    assert later.remaining == 0


def test_each_account_has_its_own_bucket_and_its_own_limit() -> None:
    clock = ManualClock()
    buckets = AccountBuckets(RateLimit(per_second=1, burst=1), clock)
    assert buckets.take(1, None, None).allowed
    assert not buckets.take(1, None, None).allowed
    assert buckets.take(2, None, None).allowed  # another account is not affected
    assert buckets.take(3, 10, 5).remaining == 4  # its own limit wins over the default
    clock.advance(1)
    assert buckets.take(1, None, None).allowed


@pytest.mark.usefixtures("seeded")
def test_an_account_past_its_limit_gets_429_and_every_answer_says_where_it_stands(
    client: TestClient, engine: Engine, clock: ManualClock
) -> None:
    with engine.connect() as conn:
        found = account_store.find_sandbox_account(conn)
    assert found is not None
    sandbox = found.id
    accounts.set_rate_limit(engine, SystemClock(), sandbox, 1, 2, actor=ADMIN_CLI)
    token = access_token(client)

    first = get_sim(client, "32470000001", token)
    assert first.status_code == 200
    assert first.headers["ratelimit-limit"] == "2"
    assert first.headers["ratelimit-remaining"] == "1"
    assert first.headers["ratelimit-reset"] == "1"
    missing = get_sim(client, "32479999999", token)
    assert missing.status_code == 404  # an error answer carries them too
    assert missing.headers["ratelimit-remaining"] == "0"

    refused = get_sim(client, "32470000001", token)
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["ratelimit-remaining"] == "0"

    clock.advance(1)
    assert get_sim(client, "32470000001", token).status_code == 200

    accounts.set_rate_limit(
        engine, SystemClock(), sandbox, None, None, actor=ADMIN_CLI
    )  # back to the generous default
    assert get_sim(client, "32470000001", token).headers["ratelimit-limit"] == "2000"


@pytest.mark.usefixtures("seeded")
def test_answers_to_unidentified_callers_carry_no_rate_limit(client: TestClient) -> None:
    response = get_sim(client, "32470000001", "not-a-token")
    assert response.status_code == 401
    assert "ratelimit-limit" not in response.headers
