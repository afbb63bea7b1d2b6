"""Importing SIM cards from CSV: validate every row, report every problem, import all or nothing.

Columns (header row required, names case-insensitive):

- required: ``iccid``, ``imsi``, ``msisdn``, ``state`` (Ready, Active, Deactivated, Terminated)
- optional: ``cost_center``; ``profile`` (a JSON document in the wire shape of the profile:
  AccessPoints, CustomFields, DataService, SMSService, VoiceService); and shorthands that fill
  parts of it: ``apn``, ``static_ip``, ``data_plan``, ``data_daily_threshold``,
  ``data_monthly_threshold``, ``sms_plan``, ``voice_plan``, ``custom_field_1`` … ``custom_field_7``.

Text (the cost center, every string of the profile) is at most 200 characters without control
characters; thresholds are whole numbers from 0 to 2**63 - 1; CustomFields has the documented
keys only (see ``m2m.profile``).

Rows are checked as they are read (pure checks, ``parse_row``), staged in a temporary table, then
checked for duplicates inside the file and against the whole inventory by the database. With any
problem nothing is imported, unless ``skip_invalid`` is set: then the good rows are.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy import Engine

from m2m.audit import Actor, created
from m2m.freetext import control_character, text_problem
from m2m.identifiers import SimState, iccid_problem, imsi_problem, msisdn_problem, normalize_msisdn
from m2m.profile import (
    CUSTOM_FIELD_NAMES,
    MAX_THRESHOLD,
    TEXT_LENGTH,
    AccessPoint,
    AccessPointProperties,
    SimProfile,
    custom_fields_document,
)
from m2m.storage import audit as audit_store
from m2m.storage import sims as sim_store
from m2m.storage.engine import take_write_lock_at_begin

if TYPE_CHECKING:
    from _csv import Reader  # what csv.reader returns

REQUIRED = ("iccid", "imsi", "msisdn", "state")
SHORTHANDS = (
    "apn",
    "static_ip",
    "data_plan",
    "data_daily_threshold",
    "data_monthly_threshold",
    "sms_plan",
    "voice_plan",
    *(f"custom_field_{n}" for n in range(1, len(CUSTOM_FIELD_NAMES) + 1)),
)
OPTIONAL = ("cost_center", "profile", *SHORTHANDS)
_THRESHOLDS = (
    ("data_daily_threshold", "DailyTreshold"),
    ("data_monthly_threshold", "MonthlyTreshold"),
)
_TEXT_SHORTHANDS = tuple(name for name in SHORTHANDS if name not in dict(_THRESHOLDS))
BATCH = 10_000
_STATES = {state.value.lower(): state.value for state in SimState}


def _stored_json(profile: SimProfile) -> str:
    # As every writer stores a profile (``m2m.profile.stored_profile``): all seven custom
    # fields, in order, so that the list can answer the stored text as it is.
    profile.CustomFields = custom_fields_document(profile.CustomFields)
    return profile.model_dump_json()


_EMPTY_PROFILE = _stored_json(SimProfile())


class ImportFileError(Exception):
    """The file cannot be imported at all (unreadable, no header, unknown columns)."""


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str


@dataclass(slots=True)
class ImportReport:
    rows: int = 0
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)


def _document_problem(error: ErrorDetails) -> str:
    """The row's problem for the first error pydantic found in its ``profile`` document."""
    path = [str(part) for part in error["loc"]] or ["profile"]
    if path[-1] == "[key]":  # a key outside the allowed ones (CustomFields'): name the key
        *path, key, _ = path
        where = ".".join(path) + f", key {key!r}"
    else:
        where = ".".join(path)
    message = error["msg"]
    if error["type"] == "string_pattern_mismatch":  # the profile's one pattern: no control chars
        message = f"contains a control character ({control_character(str(error['input']))})"
    return f"profile is not a valid profile document ({where}: {message})"


def _whole_number(digits: str) -> int:
    # Without its leading zeros first: int() refuses more than 4,300 digits.
    return int(digits.lstrip("0") or "0")


def _threshold_problem(column: str, value: str) -> str | None:
    if not (value.isascii() and value.isdigit()):
        return f"{column} must be a whole number"
    if len(value.lstrip("0")) > len(str(MAX_THRESHOLD)) or _whole_number(value) > MAX_THRESHOLD:
        return f"{column} is larger than {MAX_THRESHOLD}"
    return None


def _shorthand_problems(record: dict[str, str]) -> list[str]:
    """Shorthands are set on the profile model without pydantic validating them: the limits of
    its strings and thresholds are checked here."""
    problems = []
    for column in _TEXT_SHORTHANDS:
        value = record.get(column)
        problem = value and text_problem(column, value, TEXT_LENGTH)
        if problem:
            problems.append(problem)
    if record.get("static_ip") and not record.get("apn"):
        problems.append("static_ip needs an apn on the same row")
    for column, _ in _THRESHOLDS:
        value = record.get(column)
        problem = value and _threshold_problem(column, value)
        if problem:
            problems.append(problem)
    return problems


def _apply_shorthands(base: SimProfile, record: dict[str, str]) -> None:
    """Set the (checked) shorthands of the row on its profile."""
    if record.get("apn"):
        properties = AccessPointProperties(StaticIP=record.get("static_ip", ""))
        base.AccessPoints = [AccessPoint(Code=record["apn"], Properties=properties)]
    if record.get("data_plan"):
        base.DataService.Plan.Code = record["data_plan"]
    for column, attribute in _THRESHOLDS:
        if record.get(column):
            setattr(base.DataService, attribute, _whole_number(record[column]))
    if record.get("sms_plan"):
        base.SMSService.PlanCode = record["sms_plan"]
    if record.get("voice_plan"):
        base.VoiceService.PlanCode = record["voice_plan"]
    for n, name in enumerate(CUSTOM_FIELD_NAMES, start=1):
        value = record.get(f"custom_field_{n}", "")
        if value:
            base.CustomFields[name] = value


def _profile(record: dict[str, str], problems: list[str]) -> str:
    """The row's stored profile as JSON text. Parsed, validated and serialised by pydantic's
    compiled core, never as Python dicts: with a profile on every row that was most of the
    import's time."""
    raw = record.get("profile", "")
    if raw:
        try:
            base = SimProfile.model_validate_json(raw)
        except ValidationError as error:
            problems.append(_document_problem(error.errors()[0]))
            return _EMPTY_PROFILE
    elif not any(record.get(name) for name in SHORTHANDS):
        return _EMPTY_PROFILE  # most files carry no profile at all
    else:
        base = SimProfile()
    found = _shorthand_problems(record)
    if found:
        problems.extend(found)
        return _EMPTY_PROFILE
    _apply_shorthands(base, record)
    return _stored_json(base)


def parse_row(record: dict[str, str]) -> tuple[dict[str, Any] | None, list[str]]:
    """One CSV record → the row to stage, or the list of what is wrong with it."""
    problems = []
    iccid = record.get("iccid", "").strip()
    imsi = record.get("imsi", "").strip()
    msisdn = normalize_msisdn(record.get("msisdn", ""))
    state = _STATES.get(record.get("state", "").strip().lower())
    for problem in (iccid_problem(iccid), imsi_problem(imsi), msisdn_problem(msisdn)):
        if problem:
            problems.append(problem)
    if state is None:
        problems.append("state must be one of " + ", ".join(s.value for s in SimState))
    cost_center = record.get("cost_center", "").strip() or None
    problem = cost_center and text_problem("cost_center", cost_center, TEXT_LENGTH)
    if problem:
        problems.append(problem)
    profile = _profile(record, problems)
    if problems:
        return None, problems
    row = {
        "iccid": iccid,
        "imsi": imsi,
        "msisdn": msisdn,
        "state": state,
        "cost_center": cost_center,
        "profile": profile,
    }
    return row, []


def _records(
    stream: TextIO, progress: Callable[[int], None]
) -> Iterator[tuple[int, dict[str, str]]]:
    def counted_lines() -> Iterator[str]:
        pending = 0
        for text_line in stream:
            pending += len(text_line)
            if pending >= 1 << 20:
                progress(pending)
                pending = 0
            yield text_line
        progress(pending)

    reader = csv.reader(counted_lines())
    try:
        yield from _rows_by_header(reader)
    except csv.Error as error:  # an unclosed quote, a cell over the csv module's size limit
        raise ImportFileError(
            f"the file is not valid CSV at line {reader.line_num}: {error}"
        ) from error


def _rows_by_header(reader: Reader) -> Iterator[tuple[int, dict[str, str]]]:
    """Each record after the header as (line, cells by column name), the header checked first."""
    header = next(reader, None)
    if header is None:
        raise ImportFileError("the file is empty: it needs a header row")
    names = [name.strip().lower() for name in header]
    missing = [name for name in REQUIRED if name not in names]
    unknown = [
        name or f"(unnamed, column {position})"
        for position, name in enumerate(names, start=1)
        if name not in REQUIRED and name not in OPTIONAL
    ]
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if missing or unknown or repeated:
        parts = []
        if missing:
            parts.append("missing column(s): " + ", ".join(missing))
        if unknown:
            parts.append("unknown column(s): " + ", ".join(unknown))
        if repeated:
            parts.append("repeated column(s): " + ", ".join(repeated))
        raise ImportFileError("; ".join(parts) + f" (known: {', '.join(REQUIRED + OPTIONAL)})")
    width = len(names)
    for values in reader:
        if not values or (len(values) == 1 and not values[0].strip()):
            continue  # blank line
        if len(values) != width:
            yield reader.line_num, {"__width__": str(len(values))}
            continue
        yield reader.line_num, dict(zip(names, values, strict=True))


def import_csv(
    engine: Engine,
    path: Path,
    account_id: int,
    now: datetime,
    *,
    actor: Actor,
    skip_invalid: bool = False,
    progress: Callable[[int], None] = lambda _n: None,
    phase: Callable[[str], None] = lambda _name: None,
) -> ImportReport:
    """Import ``path`` into ``account_id``'s inventory. ``progress`` gets characters read;
    ``phase`` names each step after the reading ("checking for duplicates", "inserting"), which
    take seconds at a million rows with nothing more to count."""
    report = ImportReport()
    with engine.connect() as conn:
        # Phase 1 writes only the connection's temporary table: no lock on the inventory.
        with conn.begin():
            sim_store.create_staging(conn)
            batch: list[dict[str, Any]] = []
            try:
                stream = path.open(newline="", encoding="utf-8-sig")
            except OSError as error:
                raise ImportFileError(f"cannot read {path}: {error.strerror}") from error
            with stream:
                try:
                    for line, record in _records(stream, progress):
                        report.rows += 1
                        if "__width__" in record:
                            report.errors.append(
                                RowError(
                                    line,
                                    f"expected the header's number of fields, "
                                    f"got {record['__width__']}",
                                )
                            )
                            continue
                        row, problems = parse_row(record)
                        if row is None:
                            report.errors.extend(RowError(line, p) for p in problems)
                            continue
                        row["line"] = line
                        batch.append(row)
                        if len(batch) >= BATCH:
                            sim_store.stage_rows(conn, batch)
                            batch = []
                except UnicodeDecodeError as error:
                    raise ImportFileError(f"the file is not UTF-8 text ({error.reason})") from error
            sim_store.stage_rows(conn, batch)

        # Phase 2 takes the write lock: find duplicates, then move the rows in one transaction.
        phase("checking for duplicates")
        take_write_lock_at_begin(conn)
        with conn.begin() as transaction:
            duplicates = [RowError(line, text) for line, text in sim_store.staged_duplicates(conn)]
            report.errors.extend(duplicates)
            report.errors.sort(key=lambda e: e.line)
            if report.errors and not skip_invalid:
                transaction.rollback()
            else:
                phase("inserting")
                sim_store.discard_staged(conn, sorted({e.line for e in duplicates}))
                report.imported = sim_store.insert_staged(conn, account_id, now)
                if report.imported:
                    # One entry for the import, not one per SIM (a file may hold millions).
                    audit_store.record(
                        conn,
                        account_id=account_id,
                        actor=actor,
                        action="sim.imported",
                        subject_kind="import",
                        subject=path.name,
                        changes=created(imported=report.imported),
                        now=now,
                    )
        with conn.begin():
            sim_store.drop_staging(conn)
    return report
