"""Devices for a lifecycle request, from a CSV file: checked line by line before anything is sent.

Accepted shapes (a header row is optional; blank lines and lines starting with # are skipped)::

    32470000001                       one identifier per line, of the --type given (MSISDN)
    8932017000000000014,ICCID         identifier, identifierType
    identifier,identifierType         a header naming the wire's fields …
    iccid,imsi,msisdn,state           … or an inventory export: the --type column is used
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from m2m.client.checks import device_problem
from m2m.client.models import Device
from m2m.identifiers import IdentifierType

MAX_PROBLEMS_SHOWN = 5


class DevicesFileError(Exception):
    """The file cannot be used; the message names the lines at fault."""


def _is_header(row: list[str]) -> bool:
    first = row[0].strip().lstrip("+")
    return not first.isdigit()


def _column(header: list[str], kind: IdentifierType, number: int) -> tuple[int, int | None]:
    names = [cell.strip().lower() for cell in header]
    if "identifier" in names:
        type_column = names.index("identifiertype") if "identifiertype" in names else None
        return names.index("identifier"), type_column
    if kind.value.lower() in names:
        return names.index(kind.value.lower()), None
    raise DevicesFileError(
        f"line {number}: the header has neither an 'identifier' nor a "
        f"'{kind.value.lower()}' column "
        f"(found: {', '.join(names)})"
    )


def parse_devices(lines: Iterable[str], kind: IdentifierType, source: str) -> list[Device]:
    devices: list[Device] = []
    problems: list[str] = []
    id_column, type_column = 0, None
    first_row, headed = True, False
    rows = csv.reader(lines)
    for row in rows:
        number = rows.line_num
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if first_row and _is_header(row):
            id_column, type_column = _column(row, kind, number)
            first_row, headed = False, True
            continue
        first_row = False
        if not headed and len(row) == 2:
            type_column = 1  # identifier,identifierType without a header
        try:
            identifier = row[id_column].strip()
            type_name = row[type_column].strip() if type_column is not None else kind.value
        except IndexError:
            problems.append(f"line {number}: too few columns")
            continue
        if type_name.upper() not in IdentifierType.__members__:
            problems.append(f"line {number}: unknown identifier type {type_name!r}")
            continue
        device = Device(identifier=identifier, identifier_type=IdentifierType[type_name.upper()])
        problem = device_problem(device)
        if problem:
            problems.append(f"line {number}: {problem} ({identifier!r})")
            continue
        devices.append(device)
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = len(problems) - MAX_PROBLEMS_SHOWN
        suffix = f"; and {more} more" if more > 0 else ""
        raise DevicesFileError(
            f"{source}: {len(problems)} bad line(s): {shown}{suffix}; nothing sent"
        )
    return devices


def read_devices(path: Path, kind: IdentifierType) -> list[Device]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            return parse_devices(file, kind, str(path))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DevicesFileError(f"cannot read {path}: {error}") from error
