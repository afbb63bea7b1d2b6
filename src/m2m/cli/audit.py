"""``m2m audit``: the account's audit trail, newest first, every page followed as it streams."""

from __future__ import annotations

import itertools
import json
from typing import Annotated, Any

import typer

from m2m.cli.common import console, print_json_line
from m2m.cli.remote import CaBundleOption, ConfigOption, ProfileOption, remote
from m2m.client import AuditEvent

MAX_SHOWN_VALUE = 60


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_SHOWN_VALUE else text[: MAX_SHOWN_VALUE - 1] + "…"


def describe_changes(changes: dict[str, Any]) -> str:
    """``field: before → after`` for each field; a new thing's fields show only their value."""
    parts = []
    for name, change in changes.items():
        if not isinstance(change, dict):
            parts.append(f"{name}: {_value(change)}")
        elif change.get("before") is None:
            parts.append(f"{name}: {_value(change.get('after'))}")
        else:
            parts.append(f"{name}: {_value(change['before'])} → {_value(change.get('after'))}")
    return "; ".join(parts)


def event_line(event: AuditEvent) -> str:
    when = event.occurred_at.strftime("%Y-%m-%d %H:%M:%S")
    line = (
        f"{when}  {event.actor.kind}:{event.actor.name}  {event.action}  "
        f"{event.subject.kind} {event.subject.id}"
    )
    changes = describe_changes(event.changes)
    return f"{line}  {changes}" if changes else line


def audit(
    sim: Annotated[str | None, typer.Option(help="Only this SIM's events (its ICCID).")] = None,
    actor: Annotated[
        str | None,
        typer.Option(help="Only this actor's: a client_id, a token's name, an email, admin CLI."),
    ] = None,
    action: Annotated[
        list[str] | None,
        typer.Option(help="Only this action (repeatable); ending in '.' is a prefix: request."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this time (ISO 8601; UTC without offset).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601).")] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Show at most this many events (default: all).")
    ] = None,
    page_size: Annotated[int, typer.Option(min=1, max=1000, hidden=True)] = 1000,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON event a line (as the API answers them).")
    ] = False,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    ca_bundle: CaBundleOption = None,
) -> None:
    """Show the account's audit trail, newest first: who changed what, when."""
    with remote(profile, config, ca_bundle) as (client, _):
        events = client.audit_events(
            sim=sim,
            actor=actor,
            action=action,
            since=since,
            until=until,
            page_size=min(limit, page_size) if limit else page_size,
        )
        for event in itertools.islice(events, limit):
            if as_json:
                print_json_line(event.model_dump(mode="json"))
            else:
                console.print(event_line(event), highlight=False, markup=False, soft_wrap=True)
