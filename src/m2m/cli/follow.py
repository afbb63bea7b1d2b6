"""Submitting many devices with a progress bar, and following the requests to the end (--wait).

Progress goes to stderr; stdout gets only the TrackingNumbers, one a line, so scripts can read
them. They are printed once submitting stops — also when it stops at an error, so a caller always
learns which requests were accepted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich import box
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from m2m.cli.common import console, err_console, fail
from m2m.client import (
    Device,
    ExtensionUnavailable,
    M2MClient,
    PartialSubmissionError,
    RequestStatus,
    TrackingNumber,
)

SOME_DEVICES_FAILED = 3
FAILURES_SHOWN = 10


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<11}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err_console,
        redirect_stdout=False,  # stdout is for the TrackingNumbers
        redirect_stderr=False,
    )


def _print_numbers(numbers: Sequence[str]) -> None:
    for number in numbers:
        console.print(number, highlight=False)


def accepted(progress: Progress, task: TaskID, number: str, count: int) -> None:
    # Also on stderr as it happens: if the run is interrupted, the accepted requests are known.
    progress.console.print(f"Accepted {count} device(s): {number}", highlight=False)
    progress.advance(task, count)


def submit(
    client: M2MClient, operation: str, devices: list[Device], callback_token: str, batch_size: int
) -> list[TrackingNumber]:
    """Send every device, in requests of at most ``batch_size``; print the TrackingNumbers."""
    with _progress() as progress:
        task = progress.add_task("Submitting", total=len(devices))
        try:
            numbers = client.request_all(
                operation,
                devices,
                callback_token,
                batch_size=batch_size,
                on_batch=lambda number, count: accepted(progress, task, number, count),
            )
        except Exception as error:
            progress.update(task, visible=False)  # the error says how far it got
            progress.stop()
            if isinstance(error, PartialSubmissionError):
                _print_numbers(error.tracking_numbers)
            raise
    _print_numbers(numbers)
    return numbers


def follow(
    client: M2MClient, numbers: list[TrackingNumber], device_count: int, poll_seconds: float
) -> int:
    """Poll until every request is finished, print a summary; the exit code it deserves."""
    with _progress() as progress:
        task = progress.add_task("Processing", total=device_count)

        def on_poll(statuses: list[RequestStatus]) -> None:
            progress.update(task, completed=sum(s.done_count for s in statuses))

        try:
            statuses = client.wait(numbers, poll_seconds=poll_seconds, on_poll=on_poll)
        except ExtensionUnavailable as error:
            progress.update(task, visible=False)
            progress.stop()
            raise fail(f"{error}; --wait needs it") from error
    return summarize(statuses)


def summarize(statuses: list[RequestStatus]) -> int:
    rows = []
    failures: list[str] = []
    for status in statuses:
        callbacks = Counter(d.callback.status for d in status.devices if d.callback)
        rows.append(
            (
                status.tracking_number,
                status.device_count,
                status.count("Success"),
                status.count("Failure"),
                f"{callbacks['delivered']}/{status.device_count}",
            )
        )
        failures += [
            f"{d.identifier_type} {d.identifier}: {'; '.join(d.messages) or 'failed'}"
            for d in status.devices
            if d.result_status == "Failure"
        ]
    title = f"{statuses[0].operation.capitalize()} requests" if statuses else None
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("TrackingNumber", no_wrap=True, min_width=36)
    for column in ("Devices", "OK", "Failed", "Delivered"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    console.print(table)
    if not failures:
        return 0
    err_console.print(f"{len(failures)} device(s) failed:", highlight=False)
    for line in failures[:FAILURES_SHOWN]:
        err_console.print("  " + line, highlight=False, markup=False, soft_wrap=True)
    if len(failures) > FAILURES_SHOWN:
        err_console.print(f"  … and {len(failures) - FAILURES_SHOWN} more", highlight=False)
    return SOME_DEVICES_FAILED
