"""The overview's chart geometry."""

from __future__ import annotations

from datetime import UTC, datetime

from m2m.console import charts


def test_the_longest_bar_fills_the_room_and_the_others_are_proportional() -> None:
    bars = charts.horizontal_bars([("Ready", 40), ("Active", 80), ("Terminated", 0)])
    assert bars[1].length == 2 * bars[0].length > 0
    assert bars[2].length == 0
    assert [b.label for b in bars] == ["Ready", "Active", "Terminated"]
    assert bars[0].y < bars[1].y < bars[2].y


def test_no_data_draws_empty_bars_not_a_division_by_zero() -> None:
    assert [b.length for b in charts.horizontal_bars([("a", 0), ("b", 0)])] == [0, 0]


def test_hourly_columns_cover_24_hours_ending_now_and_stack_outcomes() -> None:
    now = datetime(2026, 11, 28, 14, 30, tzinfo=UTC)
    columns = charts.hourly_columns(
        [
            ("2026-11-28 14", "Success", 6),
            ("2026-11-28 14", "Failure", 2),
            ("2026-11-27 15", "Pending", 4),
            ("2026-11-27 14", "Success", 99),  # 24 hours ago: outside the window
        ],
        now,
    )
    assert len(columns) == 24
    assert columns[0].label == "15h"
    assert columns[-1].label == "14h"
    assert columns[-1].total == 8
    assert columns[0].total == 4
    success, failure, _pending = columns[-1].segments
    # The tallest column fills the plot; segments stack upwards without overlapping.
    assert success.height + failure.height == charts.HEIGHT - 20
    assert failure.y + failure.height == success.y


def test_latency_histogram_and_percentiles() -> None:
    histogram = dict(charts.latency_histogram([50, 99, 100, 300, 7000]))
    assert histogram["0 ms to 100 ms"] == 2
    assert histogram["100 ms to 250 ms"] == 1
    assert histogram["250 ms to 500 ms"] == 1
    assert histogram["> 5 s"] == 1
    assert charts.percentile([5, 1, 3, 2, 4], 0.5) == 3
    assert charts.percentile([], 0.95) is None


def test_success_rate_ignores_messages_still_pending() -> None:
    assert charts.success_rate(9, 1) == 0.9
    assert charts.success_rate(0, 0) is None
