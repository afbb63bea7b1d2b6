"""The overview's small charts, as geometry for inline SVG. Pure functions, no I/O.

Every chart is drawn in a fixed viewBox (``WIDTH`` x ``HEIGHT`` units) and scales with the page;
templates only place the shapes computed here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from m2m.usage import BYTES_PER_MB

WIDTH = 300
HEIGHT = 120
OUTCOMES = ("Success", "Failure", "Pending")
LATENCY_BUCKETS_MS = (100, 250, 500, 1000, 5000)  # upper bounds; the last bucket is open


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    y: float
    length: float  # of WIDTH minus the label column


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    value: int
    y: float
    height: float


@dataclass(frozen=True, slots=True)
class Column:
    label: str  # "14h"
    x: float
    width: float
    segments: list[Segment]

    @property
    def total(self) -> int:
        return sum(s.value for s in self.segments)


BAR_LABEL_WIDTH = 115
BAR_HEIGHT = 20


def horizontal_bars(values: Sequence[tuple[str, int]]) -> list[Bar]:
    """One bar per (label, value), the longest filling the width."""
    top = max((v for _, v in values), default=0) or 1
    room = WIDTH - BAR_LABEL_WIDTH - 40  # leave space for the number after the bar
    return [
        Bar(label, value, y=i * (BAR_HEIGHT + 8), length=room * value / top)
        for i, (label, value) in enumerate(values)
    ]


def bars_height(bars: Sequence[Bar]) -> int:
    return max(1, len(bars)) * (BAR_HEIGHT + 8)


def hourly_columns(counts: Sequence[tuple[str, str, int]], now: datetime) -> list[Column]:
    """24 columns, one per hour up to ``now`` (UTC), each stacked by outcome.

    ``counts`` are (hour "YYYY-MM-DD HH", outcome, devices)."""
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    hours = [first + timedelta(hours=i) for i in range(24)]
    keys = [h.strftime("%Y-%m-%d %H") for h in hours]
    per_hour: dict[str, dict[str, int]] = {k: {} for k in keys}
    for key, outcome, devices in counts:
        if key in per_hour:
            name = outcome if outcome in OUTCOMES else "Pending"
            per_hour[key][name] = per_hour[key].get(name, 0) + devices
    top = max((sum(v.values()) for v in per_hour.values()), default=0) or 1
    plot = HEIGHT - 20  # room for the hour labels
    width = WIDTH / 24
    columns = []
    for i, (start, key) in enumerate(zip(hours, keys, strict=True)):
        y = float(plot)
        segments = []
        for name in OUTCOMES:
            value = per_hour[key].get(name, 0)
            height = plot * value / top
            y -= height
            segments.append(Segment(name, value, y=y, height=height))
        columns.append(Column(f"{start.hour:02d}h", x=i * width, width=width, segments=segments))
    return columns


def daily_columns(days: Sequence[tuple[str, int]], name: str) -> list[Column]:
    """One column per (day label, value), in order: a month of one SIM's usage."""
    top = max((value for _, value in days), default=0) or 1
    plot = HEIGHT - 20  # room for the day labels
    width = WIDTH / max(1, len(days))
    columns = []
    for i, (label, value) in enumerate(days):
        height = plot * value / top
        segment = Segment(name, value, y=plot - height, height=height)
        columns.append(Column(label, x=i * width, width=width, segments=[segment]))
    return columns


# --- data per day, against a scale ----------------------------------------------------------------

BYTES_PER_GB = 1000 * BYTES_PER_MB  # decimal, as MB are (docs/usage.md, "Units")
SCALE_WIDTH = 48  # left of the columns: the scale's labels
PLOT_TOP = 8  # room above the top gridline for its label
PLOT_BOTTOM = HEIGHT - 20  # room below for the day labels
SMALLEST_SCALE = 10_000  # bytes: 0.01 MB, so that a chart of a few bytes still reads sensibly
DAY_LABEL_HALF_WIDTH = 16  # about half of "30 Nov" at the labels' size


def data_amount(n_bytes: int) -> str:
    """Data as the console shows it: MB (1,000,000 bytes), from 1 GB on GB (1,000 MB); at most
    three decimals, trailing zeros dropped ("1.5 GB", "250 MB")."""
    if n_bytes >= BYTES_PER_GB:
        return _decimal(n_bytes / BYTES_PER_GB) + " GB"
    text = _decimal(n_bytes / BYTES_PER_MB)
    if n_bytes and text == "0":
        return "< 0.001 MB"  # a few bytes are not nothing
    return text + " MB"


def _decimal(value: float) -> str:
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def scale_top(value: int) -> int:
    """The scale's top: the smallest 1, 2 or 5 times a power of ten at or above ``value``, so
    that its gridlines read as round amounts."""
    step = SMALLEST_SCALE
    while True:
        for multiple in (1, 2, 5):
            if step * multiple >= value:
                return step * multiple
        step *= 10


@dataclass(frozen=True, slots=True)
class DayColumn:
    title: str  # "Mon 30 Nov: 1.5 GB"
    value: int  # bytes
    x: float
    width: float
    y: float
    height: float


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True, slots=True)
class DayLabel:
    x: float
    anchor: str  # SVG text-anchor: kept inside the chart at its edges
    text: str


@dataclass(frozen=True, slots=True)
class DataChart:
    columns: list[DayColumn]
    ticks: list[Tick]  # the scale: 0, half and the top, as gridlines with their amounts
    labels: list[DayLabel]  # under each Monday's column: weeks are how people count days back


def data_per_day(days: Sequence[tuple[date, int]]) -> DataChart:
    """One column per (day, bytes), in order, against a scale of round amounts."""
    top = scale_top(max((value for _, value in days), default=0))
    plot = PLOT_BOTTOM - PLOT_TOP
    width = (WIDTH - SCALE_WIDTH) / max(1, len(days))
    columns = []
    labels = []
    for i, (day, value) in enumerate(days):
        height = plot * value / top
        x = SCALE_WIDTH + i * width
        title = f"{day:%a} {day.day} {day:%b}: {data_amount(value)}"
        columns.append(DayColumn(title, value, x, width, PLOT_BOTTOM - height, height))
        if day.weekday() == 0:
            labels.append(_day_label(x + width / 2, f"{day.day} {day:%b}"))
    ticks = [
        Tick(PLOT_BOTTOM - plot * halves / 2, data_amount(top * halves // 2) if halves else "0")
        for halves in (0, 1, 2)
    ]
    return DataChart(columns, ticks, labels)


def _day_label(centre: float, text: str) -> DayLabel:
    if centre + DAY_LABEL_HALF_WIDTH > WIDTH:
        return DayLabel(WIDTH, "end", text)
    if centre - DAY_LABEL_HALF_WIDTH < SCALE_WIDTH:
        return DayLabel(SCALE_WIDTH, "start", text)
    return DayLabel(centre, "middle", text)


def latency_histogram(latencies_ms: Sequence[int]) -> list[tuple[str, int]]:
    """(bucket label, attempts) for the buckets of ``LATENCY_BUCKETS_MS``."""
    labels = []
    lower = 0
    for upper in LATENCY_BUCKETS_MS:
        labels.append(f"{_ms(lower)} to {_ms(upper)}")
        lower = upper
    labels.append(f"> {_ms(lower)}")
    counts = [0] * len(labels)
    for value in latencies_ms:
        index = next(
            (i for i, upper in enumerate(LATENCY_BUCKETS_MS) if value < upper),
            len(LATENCY_BUCKETS_MS),
        )
        counts[index] += 1
    return list(zip(labels, counts, strict=True))


def percentile(values: Sequence[int], fraction: float) -> int | None:
    """The nearest-rank percentile, or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def success_rate(delivered: int, failed: int) -> float | None:
    """Delivered share of the messages that reached an end (pending ones are not judged yet)."""
    ended = delivered + failed
    return None if ended == 0 else delivered / ended


def _ms(value: int) -> str:
    return f"{value // 1000} s" if value >= 1000 else f"{value} ms"
