"""The console's chart geometry, and how it shows amounts of data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

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


def test_data_reads_in_decimal_mb_then_gb() -> None:
    assert charts.data_amount(0) == "0 MB"
    assert charts.data_amount(1_500_000) == "1.5 MB"
    assert charts.data_amount(123_456_789) == "123.457 MB"
    assert charts.data_amount(999_999_999) == "1,000 MB"
    assert charts.data_amount(1_000_000_000) == "1 GB"
    assert charts.data_amount(2_345_600_000_000) == "2,345.6 GB"
    assert charts.data_amount(300) == "< 0.001 MB"  # a few bytes are not nothing


def test_the_scale_tops_at_a_round_amount_above_the_largest_day() -> None:
    assert charts.scale_top(0) == 10_000
    assert charts.scale_top(11_000_000) == 20_000_000
    assert charts.scale_top(20_000_000) == 20_000_000
    assert charts.scale_top(20_000_001) == 50_000_000
    assert charts.scale_top(3_100_000_000) == 5_000_000_000


def test_data_per_day_columns_stand_on_the_scale_with_mondays_labelled() -> None:
    first = date(2026, 11, 3)  # a Tuesday
    days = [(first + timedelta(n), 0) for n in range(30)]
    days[0] = (first, 400_000_000)
    days[5] = (days[5][0], 1_000_000_000)
    chart = charts.data_per_day(days)
    assert len(chart.columns) == 30
    assert [t.label for t in chart.ticks] == ["0", "500 MB", "1 GB"]
    bottom, _, top = (t.y for t in chart.ticks)
    tallest = chart.columns[5]
    assert (tallest.y, tallest.y + tallest.height) == (top, bottom)  # 1 GB reaches the top
    assert chart.columns[0].height == pytest.approx(tallest.height * 0.4)
    assert chart.columns[0].title == "Tue 3 Nov: 400 MB"
    assert chart.columns[1].height == 0
    assert chart.columns[0].x >= charts.SCALE_WIDTH  # the scale's labels are left of them
    assert chart.columns[-1].x + chart.columns[-1].width == charts.WIDTH
    assert [label.text for label in chart.labels] == ["9 Nov", "16 Nov", "23 Nov", "30 Nov"]
    assert {label.anchor for label in chart.labels} == {"middle"}


def test_day_labels_at_the_charts_edges_stay_inside_it() -> None:
    monday = date(2026, 11, 2)
    labels = charts.data_per_day([(monday + timedelta(n), 1) for n in range(15)]).labels
    assert [(label.text, label.anchor) for label in labels] == [
        ("2 Nov", "start"),
        ("9 Nov", "middle"),
        ("16 Nov", "end"),
    ]
    assert labels[0].x == charts.SCALE_WIDTH
    assert labels[-1].x == charts.WIDTH
