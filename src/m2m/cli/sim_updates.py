"""Sending a bulk update (``m2m sim update --from FILE``) with a progress bar.

Rows go one PATCH each, with the row's idempotency key (see ``sim_changes``), so a run that
stopped half-way can simply be started again. A row the server refuses is reported with its
line on stderr and the others go on; the exit code says whether any failed. Progress and errors
go to stderr; with ``--json`` stdout gets each updated SIM as one JSON line.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from m2m.cli.common import err_console, print_json_line
from m2m.cli.sim_changes import RowUpdate
from m2m.client import APIError, M2MClient

SOME_ROWS_FAILED = 1


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err_console,
        redirect_stdout=False,  # stdout is for --json
        redirect_stderr=False,
    )


def update_all(client: M2MClient, rows: Sequence[RowUpdate], *, as_json: bool) -> int:
    """PATCH every row; the exit code (0: all updated). A network failure stops the run (the
    rows after it were not sent; running the file again finishes it)."""
    failed = 0
    with _progress() as progress:
        task = progress.add_task("Updating", total=len(rows))
        for row in rows:
            try:
                sim = client.update_sim(row.iccid, row.patch, idempotency_key=row.idempotency_key)
            except APIError as error:
                failed += 1
                progress.console.print(
                    f"[red]line {row.line}[/red] ({escape(row.iccid)}): {escape(error.message)}",
                    highlight=False,
                    soft_wrap=True,
                )
            else:
                if as_json:
                    print_json_line(sim.model_dump(mode="json", by_alias=True))
            progress.advance(task)
    err_console.print(
        f"Updated {len(rows) - failed} SIM(s)" + (f", {failed} refused" if failed else "") + ".",
        highlight=False,
    )
    return SOME_ROWS_FAILED if failed else 0
