"""m2m.sim_query: the list query's parsing and its cursor (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from m2m.sim_query import (
    DEFAULT_LIMIT,
    ListQuery,
    Lookup,
    Position,
    QueryProblem,
    SimFilters,
    decode_cursor,
    encode_cursor,
    parse,
)


def test_an_exact_identifier_is_a_lookup() -> None:
    assert parse([("msisdn", "+32470000001")]) == Lookup("msisdn", "32470000001")
    assert parse([("iccid", "8932019999000000001")]) == Lookup("iccid", "8932019999000000001")
    assert parse([("imsi", "206010000000001")]) == Lookup("imsi", "206010000000001")


def test_no_parameter_lists_everything_in_pages_of_the_default_size() -> None:
    assert parse([]) == ListQuery(SimFilters(), DEFAULT_LIMIT)


def test_filters_are_gathered() -> None:
    query = parse(
        [
            ("state", "Active"),
            ("state", "Ready,Active"),
            ("label", "site=ghent"),
            ("label", "tier"),
            ("label", "note="),
            ("custom_field_7", "x"),
            ("updated_since", "2026-01-31T13:00:00+01:00"),
            ("limit", "1000"),
            ("count", "true"),
        ]
    )
    assert isinstance(query, ListQuery)
    assert query.filters.states == ("Active", "Ready")
    assert query.filters.labels == (("site", "ghent"), ("tier", None), ("note", ""))
    assert query.filters.custom_fields == (("Custom Field 7", "x"),)
    assert query.filters.updated_since == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert (query.limit, query.count) == (1000, True)


@pytest.mark.parametrize(
    "filters",
    [SimFilters(states=("Active",)), SimFilters(updated_since=datetime(2026, 1, 1, tzinfo=UTC))],
)
def test_a_cursor_round_trips(filters: SimFilters) -> None:
    moment = datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    position = Position(42, moment)
    decoded = decode_cursor(encode_cursor(filters, position), filters)
    assert decoded.id == 42
    if filters.updated_since is not None:
        assert decoded.updated_at == moment
    assert "=" not in encode_cursor(filters, position)  # base64url without padding


def test_a_cursor_belongs_to_its_filters() -> None:
    cursor = encode_cursor(SimFilters(states=("Active",)), Position(1))
    assert decode_cursor(cursor, SimFilters(states=("Active",))) == Position(1)
    with pytest.raises(QueryProblem) as refused:
        decode_cursor(cursor, SimFilters(states=("Ready",)))
    assert refused.value.parameter == "cursor"
    # The order of repeated filters does not make another walk.
    both = encode_cursor(SimFilters(states=("Active", "Ready")), Position(1))
    assert decode_cursor(both, SimFilters(states=("Ready", "Active"))) == Position(1)


@pytest.mark.parametrize("text", ["", "!!!", "e30", "W10", "x" * 600])
def test_garbage_is_not_a_cursor(text: str) -> None:
    with pytest.raises(QueryProblem) as refused:
        decode_cursor(text, SimFilters())
    assert refused.value.parameter == "cursor"


def test_unknown_parameters_are_named() -> None:
    with pytest.raises(QueryProblem) as refused:
        parse([("state", "Active"), ("stat", "Ready")])
    assert refused.value.parameter == "stat"
    assert "'stat'" in refused.value.message
