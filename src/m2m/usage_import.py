"""Taking usage in: a CSV file from the operator's mediation (``m2m admin usage import``) or a
batch of records posted to the ingestion endpoint. Both check every record first and count
nothing when one is wrong or names no SIM, so that a corrected file can simply be sent again.

A file is counted in chunks, each its own transaction and its own batch id (the file's SHA-256
and the chunk's number): importing the same file again counts nothing twice, and a run stopped
half-way (a crash, Ctrl-C) is finished by running it again. Records are read twice (checked,
then counted) instead of being held in memory, so a file of millions of records needs little.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from sqlalchemy import Engine

from m2m import usage_policy
from m2m.clock import Clock
from m2m.storage import usage as usage_store
from m2m.storage import usage_ingest
from m2m.storage.engine import write_transaction
from m2m.usage_records import UsageRecord, parse_record, read_csv

CHUNK = 50_000  # records per transaction: a write lock of about half a second (docs/benchmarks.md)
MAX_PROBLEMS = 1_000  # problems reported at most (a wrong file has them on every line)
BATCH_ID_LENGTH = 100


@dataclass(slots=True)
class UsageReport:
    records: int = 0
    counted: int = 0
    already_counted: int = 0  # records of batches counted before (sent again)
    inactive: int = 0  # counted for SIMs that were not Active
    crossings: int = 0  # threshold marks reached (one event each)
    # The deactivation requests the accounts' usage policies made (TrackingNumbers).
    deactivations: list[str] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line or index, message)

    def add(self, result: usage_ingest.IngestResult, size: int) -> None:
        if result.duplicate:
            self.already_counted += size
        self.counted += result.counted
        self.inactive += result.inactive
        self.crossings += len(result.crossings)


class UsageFileError(ValueError):
    """The file cannot be read as usage records at all (its header, its encoding)."""


def import_file(
    engine: Engine,
    clock: Clock,
    path: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> UsageReport:
    """Check every record of the file, then count them all, or none when one is wrong."""
    digest, report = _check_file(engine, clock, path)
    if report.problems:
        return report
    with path.open(encoding="utf-8", newline="") as stream:
        for number, chunk in enumerate(_chunks(_records(stream, clock))):
            batch_id = f"file:{digest}:{number}"
            with write_transaction(engine) as conn:
                result = usage_ingest.ingest(conn, batch_id, chunk, clock.now())
                report.deactivations += usage_policy.enforce(conn, clock, result.crossings)
            if result.unknown:  # a SIM deleted since the check: stop, the rest can follow
                report.problems.append((0, "a SIM of the file was deleted during the import"))
                return report
            report.add(result, len(chunk))
            if progress is not None:
                progress(report.counted + report.already_counted)
    return report


def batch_id_problem(batch_id: object) -> str | None:
    """What is wrong with a batch id the mediation system or the adapter gives, if anything."""
    if (
        isinstance(batch_id, str)
        and 0 < len(batch_id) <= BATCH_ID_LENGTH
        and batch_id.isprintable()
        and batch_id.isascii()
    ):
        return None
    return f"1 to {BATCH_ID_LENGTH} printable ASCII characters"


def ingest_batch(
    engine: Engine, clock: Clock, batch_id: str, raw: Sequence[Mapping[str, object]]
) -> UsageReport:
    """Count one batch posted by the mediation system: every record checked, then all counted
    in one transaction, or none; the same ``batch_id`` again counts nothing."""
    report = UsageReport(records=len(raw))
    now = clock.now()
    records: list[UsageRecord] = []
    for index, fields in enumerate(raw):
        record, problems = parse_record(fields, now)
        report.problems += [(index, problem) for problem in problems]
        if record is not None:
            records.append(record)
    if report.problems:
        return report
    return count_batch(engine, clock, batch_id, records, report)


def count_batch(
    engine: Engine,
    clock: Clock,
    batch_id: str,
    records: Sequence[UsageRecord],
    report: UsageReport | None = None,
) -> UsageReport:
    """Count checked records as one batch, in one transaction, with what the accounts' usage
    policies do about the thresholds they reach; a record naming no SIM counts nothing."""
    report = report or UsageReport(records=len(records))
    with write_transaction(engine) as conn:
        result = usage_ingest.ingest(conn, batch_id, records, clock.now())
        report.deactivations += usage_policy.enforce(conn, clock, result.crossings)
    report.problems += [(index, _no_sim(records[index])) for index in result.unknown]
    report.add(result, len(records))
    return report


def _check_file(engine: Engine, clock: Clock, path: Path) -> tuple[str, UsageReport]:
    report = UsageReport()
    digest = hashlib.sha256()
    with path.open("rb") as raw:
        for block in iter(lambda: raw.read(1 << 20), b""):
            digest.update(block)
    now = clock.now()
    lines: dict[tuple[str, str], int] = {}  # each SIM named, at its first line
    try:
        with path.open(encoding="utf-8", newline="") as stream:
            for line, fields in read_csv(stream):
                if isinstance(fields, list):
                    report.problems += [(line, problem) for problem in fields]
                    continue
                report.records += 1
                record, problems = parse_record(fields, now)
                report.problems += [(line, problem) for problem in problems]
                if record is not None:
                    lines.setdefault(usage_store.sim_key(record), line)
                if len(report.problems) >= MAX_PROBLEMS:
                    break
    except UnicodeDecodeError as error:
        raise UsageFileError(f"the file is not UTF-8 text ({error.reason})") from error
    if not report.problems and lines:
        with engine.connect() as conn:
            missing = usage_store.unknown_sims(conn, list(lines))
        report.problems += sorted((lines[key], _named(key)) for key in missing)
    return digest.hexdigest(), report


def _records(stream: TextIO, clock: Clock) -> Iterator[UsageRecord]:
    now = clock.now()
    for _line, fields in read_csv(stream):
        if isinstance(fields, dict):
            record, _ = parse_record(fields, now)
            if record is not None:
                yield record


def _chunks(records: Iterator[UsageRecord]) -> Iterator[list[UsageRecord]]:
    chunk: list[UsageRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _named(key: tuple[str, str]) -> str:
    kind, value = key
    return f"no SIM with {kind.upper()} {value}"


def _no_sim(record: UsageRecord) -> str:
    return _named(usage_store.sim_key(record))
