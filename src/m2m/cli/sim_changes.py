"""What ``m2m sim update`` sends: a JSON Merge Patch built from its options, or one per row of a
CSV file, each row with an idempotency key of its own (pure: no I/O beyond reading the file).

Options: ``--label k=v`` sets a label and ``--label k=`` removes it; ``--custom-field 3=x`` sets
Custom Field 3 and ``--custom-field 3=`` clears it; ``--cost-center X`` (``""`` clears it);
``--threshold data.daily=N`` (``data``, ``sms`` or ``voice``; ``daily`` or ``monthly``; an empty
N resets it to 0).

A file: a header row, then one SIM a row. ``iccid`` is required; the other columns are those of
the import (``cost_center``, ``custom_field_1`` … ``custom_field_7``,
``data_daily_threshold`` … ``voice_monthly_threshold``) and ``label:KEY`` for a label. An empty
cell leaves its field alone (``--empty-clears``: it clears it). Every row is checked before
anything is sent; a problem names its line.

A row's idempotency key is made from the file's content and the row's line, so running the same
file again within 24 hours replays the answers of the rows already done instead of updating
them again, and sends only the rows that had not gone through.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from m2m.profile import CUSTOM_FIELD_NAMES

SERVICES = {"data": "DataService", "sms": "SMSService", "voice": "VoiceService"}
PERIODS = {"daily": "DailyTreshold", "monthly": "MonthlyTreshold"}
LABEL_COLUMN_PREFIX = "label:"
_THRESHOLD_COLUMNS = {
    f"{service}_{period}_threshold": (wire_service, wire_period)
    for service, wire_service in SERVICES.items()
    for period, wire_period in PERIODS.items()
}
_CUSTOM_COLUMNS = {f"custom_field_{n}": name for n, name in enumerate(CUSTOM_FIELD_NAMES, start=1)}


class ChangesError(ValueError):
    """An option or a file row that cannot be turned into a patch."""


@dataclass(frozen=True, slots=True)
class RowUpdate:
    """One row of a bulk file: its line, the SIM, the patch, and the row's idempotency key."""

    line: int
    iccid: str
    patch: dict[str, Any]
    idempotency_key: str


def _pair(option: str, value: str) -> tuple[str, str]:
    key, separator, rest = value.partition("=")
    if not separator or not key:
        raise ChangesError(f"{option} {value!r}: write it as KEY=VALUE (KEY= to remove)")
    return key, rest


def custom_field_options(given: Sequence[str]) -> dict[int, str]:
    """``--custom-field N=VALUE`` options (``m2m sim list``'s filters, ``m2m sim update``'s
    changes) as {N: VALUE}, N from 1 to 7."""
    found: dict[int, str] = {}
    for item in given:
        number, value = _pair("--custom-field", item)
        if not (number.isascii() and number.isdigit() and 1 <= int(number) <= 7):
            raise ChangesError(f"--custom-field {item!r}: the field is a number from 1 to 7")
        found[int(number)] = value
    return found


def _threshold(where: str, value: str) -> int | None:
    if value == "":
        return None  # null: back to 0
    if not (value.isascii() and value.isdigit()):
        raise ChangesError(f"{where}: {value!r} is not a whole number")
    return int(value)


def _set(patch: dict[str, Any], section: str, name: str, value: Any) -> None:
    patch.setdefault(section, {})[name] = value


def patch_from_options(
    *,
    labels: Sequence[str] = (),
    custom_fields: Sequence[str] = (),
    cost_center: str | None = None,
    thresholds: Sequence[str] = (),
) -> dict[str, Any]:
    """The merge patch the options of ``m2m sim update ICCID`` describe."""
    patch: dict[str, Any] = {}
    if cost_center is not None:
        patch["CostCenter"] = cost_center or None
    for item in labels:
        key, value = _pair("--label", item)
        _set(patch, "Labels", key, value or None)
    for number, value in custom_field_options(custom_fields).items():
        _set(patch, "CustomFields", CUSTOM_FIELD_NAMES[number - 1], value or None)
    for item in thresholds:
        name, value = _pair("--threshold", item)
        service, _, period = name.partition(".")
        if service not in SERVICES or period not in PERIODS:
            raise ChangesError(
                f"--threshold {item!r}: name it data|sms|voice . daily|monthly, "
                "e.g. data.daily=1000"
            )
        _set(patch, SERVICES[service], PERIODS[period], _threshold(f"--threshold {name}", value))
    return patch


def _row_patch(row: dict[str, str], empty_clears: bool) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for column, cell in row.items():
        if column == "iccid" or (cell == "" and not empty_clears):
            continue
        if column == "cost_center":
            patch["CostCenter"] = cell or None
        elif column in _CUSTOM_COLUMNS:
            _set(patch, "CustomFields", _CUSTOM_COLUMNS[column], cell or None)
        elif column in _THRESHOLD_COLUMNS:
            service, period = _THRESHOLD_COLUMNS[column]
            _set(patch, service, period, _threshold(column, cell))
        else:  # a label column (the header was checked)
            _set(patch, "Labels", column.removeprefix(LABEL_COLUMN_PREFIX), cell or None)
    return patch


def _check_header(header: Sequence[str]) -> None:
    if "iccid" not in header:
        raise ChangesError("line 1: the header needs an iccid column")
    known = {"iccid", "cost_center", *_CUSTOM_COLUMNS, *_THRESHOLD_COLUMNS}
    for column in header:
        if column in known:
            continue
        if column.startswith(LABEL_COLUMN_PREFIX) and column != LABEL_COLUMN_PREFIX:
            continue
        raise ChangesError(
            f"line 1: unknown column {column!r} (iccid, cost_center, custom_field_1 … 7, "
            "data|sms|voice_daily|monthly_threshold, label:KEY)"
        )
    if len(set(header)) != len(header):
        raise ChangesError("line 1: a column is named twice")


def rows_from_file(content: bytes, *, empty_clears: bool = False) -> list[RowUpdate]:
    """Every row of a bulk update file as a patch, or ``ChangesError`` naming the first bad line
    (nothing is sent unless the whole file is good)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ChangesError(f"the file is not UTF-8 text ({error.reason})") from error
    digest = hashlib.sha256(content).hexdigest()[:24]
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [column.strip() for column in next(reader, [])]
    _check_header(header)
    rows: list[RowUpdate] = []
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise ChangesError(f"line {line}: {len(cells)} cells, the header has {len(header)}")
        row = dict(zip(header, cells, strict=True))
        iccid = row["iccid"].strip()
        if not iccid:
            raise ChangesError(f"line {line}: no iccid")
        try:
            patch = _row_patch(row, empty_clears)
        except ChangesError as error:
            raise ChangesError(f"line {line}: {error}") from error
        rows.append(RowUpdate(line, iccid, patch, f"m2m-cli-{digest}-{line}"))
    return rows
