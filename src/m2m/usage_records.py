"""Usage records as the network reports them: one record is one SIM's usage over a span of time.
Checked here (pure), the same whether they come from a CSV file or the ingestion endpoint.

CSV columns (header row required, names case-insensitive, unknown columns refused so that a typo
is not silently ignored):

- the SIM: ``iccid`` or ``imsi`` (one of them);
- ``start`` (required) and ``end`` (optional): RFC 3339 times with a UTC offset
  (``2026-12-01T10:00:00Z``); ``end`` not before ``start``;
- counters, whole numbers from 0 (empty or absent: 0): ``data_up_bytes``, ``data_down_bytes``,
  ``sms_out``, ``sms_in``, ``voice_seconds``;
- where, if known: ``network`` (the visited network's MCC-MNC, 5 or 6 digits) and ``country``
  (ISO 3166 alpha-2). Checked and reported back; the hourly aggregates do not split by them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TextIO

from m2m.identifiers import iccid_format_problem, imsi_problem
from m2m.usage import COUNTERS, Totals

MAX_COUNTER = 2**63 - 1
# Records further ahead than this are refused: a clock that wrong would attribute usage to a
# period that has not begun, arming its thresholds early.
FUTURE_TOLERANCE = timedelta(minutes=10)
COLUMNS = ("iccid", "imsi", "start", "end", "network", "country", *COUNTERS)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    iccid: str | None
    imsi: str | None
    started_at: datetime
    ended_at: datetime | None
    totals: Totals
    network: str | None = None
    country: str | None = None


def parse_record(
    fields: Mapping[str, object], now: datetime
) -> tuple[UsageRecord | None, list[str]]:
    """One record (CSV strings or JSON values) → the record, or what is wrong with it."""
    problems: list[str] = []
    iccid = _text(fields.get("iccid"))
    imsi = _text(fields.get("imsi"))
    if bool(iccid) == bool(imsi):
        problems.append("give the SIM's iccid or its imsi (one of them)")
    elif problem := (iccid_format_problem(iccid) if iccid else imsi_problem(imsi)):
        problems.append(problem)
    started_at = _time("start", fields.get("start"), problems, required=True)
    ended_at = _time("end", fields.get("end"), problems, required=False)
    if started_at and ended_at and ended_at < started_at:
        problems.append("end is before start")
    if started_at and started_at > now + FUTURE_TOLERANCE:
        problems.append("start is in the future")
    counters = {name: _counter(name, fields.get(name), problems) for name in COUNTERS}
    network = _text(fields.get("network"))
    if network and not (network.isascii() and network.isdigit() and len(network) in (5, 6)):
        problems.append("network must be the MCC-MNC: 5 or 6 digits")
    country = _text(fields.get("country"))
    if country and not (country.isascii() and country.isalpha() and len(country) == 2):
        problems.append("country must be an ISO 3166 alpha-2 code, such as DE")
    if problems or started_at is None:
        return None, problems
    record = UsageRecord(
        iccid=iccid or None,
        imsi=imsi or None,
        started_at=started_at,
        ended_at=ended_at,
        totals=Totals(**counters),
        network=network or None,
        country=country.upper() if country else None,
    )
    return record, []


def read_csv(stream: TextIO) -> Iterator[tuple[int, dict[str, str] | list[str]]]:
    """(line number, the row's fields) for each data row; for the header, when it has unknown
    or missing columns, (1, the problems) and nothing more."""
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        yield 1, ["the file is empty: a header row is required"]
        return
    names = [name.strip().lower() for name in header]
    unknown = [name for name in names if name not in COLUMNS]
    problems = [f"unknown column {name!r}" for name in unknown]
    if "start" not in names:
        problems.append("the header has no 'start' column")
    if "iccid" not in names and "imsi" not in names:
        problems.append("the header needs an 'iccid' or an 'imsi' column")
    if problems:
        yield 1, problems
        return
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue  # blank lines
        if len(row) != len(names):
            yield reader.line_num, [f"{len(row)} values for {len(names)} columns"]
            continue
        yield reader.line_num, dict(zip(names, row, strict=True))


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _time(name: str, value: object, problems: list[str], *, required: bool) -> datetime | None:
    text = _text(value)
    if not text:
        if required:
            problems.append(f"{name} is required")
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        problems.append(f"{name} is not an RFC 3339 time such as 2026-12-01T10:00:00Z")
        return None
    if parsed.tzinfo is None:
        problems.append(f"{name} needs a UTC offset (Z or +01:00)")
        return None
    return parsed


def _counter(name: str, value: object, problems: list[str]) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    else:
        number = None
    if number is None or not 0 <= number <= MAX_COUNTER:
        problems.append(f"{name} must be a whole number from 0 to {MAX_COUNTER}")
        return 0
    return number
