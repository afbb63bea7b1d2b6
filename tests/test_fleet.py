"""The console's SIM queries: prefix search and keyset pages, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from m2m.sandbox import demo_iccid
from m2m.storage import fleet
from m2m.storage.accounts import find_sandbox_account


def test_the_upper_bound_of_a_digit_prefix() -> None:
    assert fleet.digits_after("3247") == "3248"
    assert fleet.digits_after("3249") == "325"
    assert fleet.digits_after("1999") == "2"
    assert fleet.digits_after("99") is None


@pytest.mark.parametrize("sparse_search", [1, fleet.SPARSE_SEARCH])
@pytest.mark.usefixtures("seeded")
def test_both_search_plans_give_the_same_pages(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, sparse_search: int
) -> None:
    """Few matches are collected from the identifier indexes, many are found walking the id
    index (forced here with a threshold of 1): the answers must not depend on the plan."""
    monkeypatch.setattr(fleet, "SPARSE_SEARCH", sparse_search)
    with engine.connect() as conn:
        account = find_sandbox_account(conn)
        assert account is not None

        def msisdns(**query: object) -> list[str]:
            page = fleet.list_sims(conn, account.id, limit=5, **query)  # type: ignore[arg-type]
            return [s.msisdn for s in page.sims]

        assert msisdns(digits="3247000009") == [f"324700000{n}" for n in range(90, 95)]
        assert msisdns(digits=demo_iccid(42)) == ["32470000042"]
        assert msisdns(digits="99999") == []
        assert msisdns(digits="32470000", state="Deactivated") == [
            f"324700000{n}" for n in range(91, 96)
        ]
        first = fleet.list_sims(conn, account.id, digits="3247", limit=5)
        second = fleet.list_sims(
            conn, account.id, digits="3247", limit=5, after_id=first.sims[-1].id
        )
        assert [s.msisdn for s in second.sims] == [f"324700000{n:02d}" for n in range(6, 11)]
        back = fleet.list_sims(
            conn, account.id, digits="3247", limit=5, before_id=second.sims[0].id
        )
        assert back.sims == first.sims
        assert not back.has_before
