"""``m2m events tail``: follow the account's event log by cursor, as ``kubectl get events -w``
follows a cluster's: what is there first, then each new event as it is stored."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from m2m.cli.common import console, err_console, print_json_line
from m2m.cli.remote import CaBundleOption, ConfigOption, ProfileOption, remote
from m2m.client import AnyEvent
from m2m.events import summary

app = typer.Typer(help="The account's event log (an m2m extension).", no_args_is_help=True)

PAGE_SIZE = 1000


def _line(event: AnyEvent) -> str:
    """One line: id, when, type, SIM, and what the data says in a few words."""
    what = summary(event.type, event.model_dump(mode="json", by_alias=True)["data"])
    sim = event.sim.iccid if event.sim is not None else "-"
    return f"{event.id}  {event.occurred_at:%Y-%m-%d %H:%M:%S}  {event.type:<18}  {sim:<20}  {what}"


@app.command("tail")
def tail(
    event_type: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            "-t",
            help="Only this type or family (sim.state_changed, sim.*); repeatable.",
            show_default=False,
        ),
    ] = None,
    sim: Annotated[
        str | None, typer.Option("--sim", help="Only the events of this SIM (its ICCID).")
    ] = None,
    since_cursor: Annotated[
        str | None,
        typer.Option(
            "--since-cursor",
            help="Start after this cursor (an event's id, or the cursor printed on exit); "
            "default: the oldest event kept.",
        ),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow/--no-follow",
            "-f",
            help="Keep waiting for new events (default), or stop once caught up.",
        ),
    ] = True,
    poll_seconds: Annotated[
        float, typer.Option("--poll-seconds", min=0.1, help="How often to ask for new events.")
    ] = 2.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="One event per line, as JSON (the envelope).")
    ] = False,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    ca_bundle: CaBundleOption = None,
) -> None:
    """Print the account's events as they come, oldest first. On exit (Ctrl-C or --no-follow)
    the cursor to resume from is printed on stderr: pass it to --since-cursor."""
    cursor = since_cursor
    types = event_type or []
    try:
        with remote(profile, config, ca_bundle) as (client, _):
            while True:
                page = client.events_page(cursor, type=types, sim=sim, limit=PAGE_SIZE)
                for event in page.events:
                    if as_json:
                        print_json_line(event.model_dump(mode="json", by_alias=True))
                    else:
                        console.print(_line(event), highlight=False, markup=False, soft_wrap=True)
                        sys.stdout.flush()
                cursor = page.cursor
                if len(page.events) == PAGE_SIZE:
                    continue  # more is waiting: no pause
                if not follow:
                    break
                time.sleep(poll_seconds)
    except KeyboardInterrupt:
        pass
    if cursor is not None:
        err_console.print(f"cursor: {cursor}", highlight=False)
