"""Sharing a batch between tenants (``m2m.fairness``): rotation, fair shares, top-ups and
round-robin, as pure functions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from m2m.fairness import interleave, nested_shares, nested_top_up, rotated, shares, top_up


def test_the_order_starts_after_the_last_one_served_and_wraps_around() -> None:
    assert rotated([3, 5, 8], None) == [3, 5, 8]
    assert rotated([3, 5, 8], 3) == [5, 8, 3]
    assert rotated([3, 5, 8], 4) == [5, 8, 3]  # the account served last has nothing left
    assert rotated([3, 5, 8], 8) == [3, 5, 8]
    assert rotated([], 8) == []


def test_rotating_serves_every_account_first_in_turn() -> None:
    accounts = [1, 2, 3]
    firsts, last = [], None
    for _ in range(6):
        order = rotated(accounts, last)
        firsts.append(order[0])
        last = order[0]
    assert firsts == [1, 2, 3, 1, 2, 3]


def test_equal_shares_with_the_remainder_to_the_first_ones() -> None:
    assert shares(10, [None, None, None]) == [4, 3, 3]
    assert shares(2, [None, None, None]) == [1, 1, 0]
    assert shares(0, [None, None]) == [0, 0]
    assert shares(5, []) == []


def test_what_one_cannot_take_goes_to_the_others() -> None:
    assert shares(64, [48, 1, None]) == [32, 1, 31]
    assert shares(64, [10, 1, None]) == [10, 1, 53]
    assert shares(64, [48, 0]) == [48, 0]  # a lone account gets its allowance, not more
    assert shares(10, [2, 2]) == [2, 2]
    assert shares(64, [0, 0]) == [0, 0]


def test_nested_shares_split_between_accounts_then_their_requests() -> None:
    # One account with ten requests beside one with a single request: half the batch each.
    parts = nested_shares(500, [[None] * 10, [None]])
    assert [sum(part) for part in parts] == [250, 250]
    assert parts[0] == [25] * 10
    assert nested_shares(3, [[None, None], [0], [None]]) == [[1, 1], [0], [1]]


def test_top_up_gives_the_places_left_to_the_queues_that_filled_their_quota() -> None:
    # The big account filled its 250, the small one had 1 item: the big one may take 249 more.
    assert top_up(500, [250, 1], [True, False], [None, None]) == [499, 1]
    # Within an allowance: an account at 40 of 48 in flight cannot take more than 8.
    assert top_up(64, [8, 0], [True, False], [8, None]) is None
    assert top_up(64, [32, 3], [True, False], [48, None]) == [48, 3]
    # Totals as level as they can be: the one that got less in the first pass gets more now.
    assert top_up(100, [17, 16, 16, 1], [True, True, True, False], [None] * 4) == [33, 33, 33, 1]
    # Nothing to top up: nobody may have more, or the batch is full.
    assert top_up(10, [2, 3], [False, False], [None, None]) is None
    assert top_up(10, [5, 5], [True, True], [None, None]) is None


def test_nested_top_up_levels_accounts_before_their_requests() -> None:
    # Account A filled its three requests' quotas, B had a single item, C filled its one request.
    got = [[56, 56, 55], [1], [166]]
    more = [[True, True, True], [False], [True]]
    topped = nested_top_up(500, got, more)
    assert topped is not None
    assert [sum(part) for part in topped] == [250, 1, 249]
    assert topped[0] == [84, 83, 83]
    assert nested_top_up(10, [[5], [5]], [[True], [True]]) is None


def test_round_robin_takes_one_of_each_in_turn() -> None:
    assert interleave([[1, 2, 3], ["a"], [10, 20]]) == [1, "a", 10, 2, 20, 3]
    assert interleave([]) == []
    assert interleave([[], [1]]) == [1]


@given(
    total=st.integers(min_value=0, max_value=600),
    allowances=st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=100)), max_size=12),
)
def test_shares_are_max_min_fair(total: int, allowances: list[int | None]) -> None:
    quotas = shares(total, allowances)
    capacity = sum(a for a in allowances if a is not None)
    unlimited = any(a is None for a in allowances)
    assert sum(quotas) == (total if unlimited else min(total, capacity))
    for quota, allowance in zip(quotas, allowances, strict=True):
        assert 0 <= quota <= (allowance if allowance is not None else total)
    # Nobody below its allowance has more than one place fewer than anyone else.
    if quotas:
        for quota, allowance in zip(quotas, allowances, strict=True):
            if allowance is None or quota < allowance:
                assert quota >= max(quotas) - 1
