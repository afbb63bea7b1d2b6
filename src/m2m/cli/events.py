"""``m2m events``: ``tail`` follows the account's event log by cursor, as ``kubectl get events
-w`` follows a cluster's (what is there first, then each new event as it is stored);
``subscribe``, ``subscriptions``, ``unsubscribe`` and ``replay`` manage the subscriptions that
have events POSTed to a URL."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from m2m.cli.callback import parse_headers
from m2m.cli.common import (
    JsonOption,
    console,
    err_console,
    fail,
    print_json,
    print_json_line,
    print_table,
)
from m2m.cli.remote import USAGE_ERROR, CaBundleOption, ConfigOption, ProfileOption, remote
from m2m.client import AnyEvent, EventSubscription
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


def _labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise fail(f"--label {pair!r}: expected KEY=VALUE", USAGE_ERROR)
        labels[key] = value
    return labels


def _row(subscription: EventSubscription) -> tuple[str, ...]:
    labels = ", ".join(f"{k}={v}" for k, v in subscription.label_filter.items())
    return (
        subscription.id,
        subscription.status,
        ", ".join(subscription.event_types),
        labels or "-",
        subscription.url,
        str(subscription.endpoint.get("state", "")),
    )


@app.command("subscribe")
def subscribe(
    url: Annotated[str, typer.Argument(help="Absolute http(s) URL the events are POSTed to.")],
    event_type: Annotated[
        list[str],
        typer.Option(
            "--type",
            "-t",
            help="A type or family to send (sim.state_changed, sim.*, *); repeatable.",
        ),
    ],
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            "-l",
            help="KEY=VALUE: only events of SIMs with this label; repeatable (all must match).",
            show_default=False,
        ),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            "-H",
            help="NAME=VALUE sent with every event (Authorization or x-*); repeatable.",
            show_default=False,
        ),
    ] = None,
    paused: Annotated[
        bool, typer.Option("--paused", help="Create it paused (nothing sent until enabled).")
    ] = False,
    as_json: bool = JsonOption,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    ca_bundle: CaBundleOption = None,
) -> None:
    """Subscribe a URL to the account's events from now on. Prints the signing secret: it is
    shown only this once (receivers verify each event's signature with it)."""
    labels = _labels(label or [])
    headers = parse_headers(header or [])
    with remote(profile, config, ca_bundle) as (client, _):
        made = client.subscribe(
            url, event_type, label_filter=labels, headers=headers, paused=paused
        )
    if as_json:
        print_json(made.model_dump(mode="json"))
        return
    console.print(
        f"Subscription {made.id}: {', '.join(made.event_types)} -> {made.url}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    console.print(
        f"Signing secret (shown only now): {made.secret}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@app.command("subscriptions")
def subscriptions(
    as_json: bool = JsonOption,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    ca_bundle: CaBundleOption = None,
) -> None:
    """List the account's event subscriptions."""
    with remote(profile, config, ca_bundle) as (client, _):
        found = client.event_subscriptions()
    if as_json:
        print_json([s.model_dump(mode="json") for s in found])
        return
    print_table(
        "Event subscriptions",
        ["Id", "Status", "Types", "Labels", "URL", "Endpoint"],
        [_row(s) for s in found],
    )


@app.command("unsubscribe")
def unsubscribe(
    subscription_id: Annotated[str, typer.Argument(help="The subscription's id (sub_…).")],
    profile: ProfileOption = None,
    config: ConfigOption = None,
    ca_bundle: CaBundleOption = None,
) -> None:
    """Delete a subscription (its events waiting to be sent are dropped)."""
    with remote(profile, config, ca_bundle) as (client, _):
        client.unsubscribe(subscription_id)
    console.print(f"Subscription {subscription_id} deleted", highlight=False, markup=False)


def _since(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.upper())
    except ValueError:
        raise fail(
            f"--since {text!r}: expected a time such as 2026-12-01T04:00:00Z", USAGE_ERROR
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@app.command("replay")
def replay(
    subscription_id: Annotated[str, typer.Argument(help="The subscription's id (sub_…).")],
    since: Annotated[
        str,
        typer.Option(
            "--since", help="Send the events stored since this time again (2026-12-01T04:00Z)."
        ),
    ],
    profile: ProfileOption = None,
    config: ConfigOption = None,
    ca_bundle: CaBundleOption = None,
) -> None:
    """Send a subscription's events since a time again (as far back as they are kept), for a
    receiver that was down past the retry schedule; receivers deduplicate by webhook-id."""
    when = _since(since)
    with remote(profile, config, ca_bundle) as (client, _):
        after = client.replay_subscription(subscription_id, when)
    console.print(
        f"Subscription {after.id}: events after {after.cursor} are being sent again",
        highlight=False,
        markup=False,
    )
