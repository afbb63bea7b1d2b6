"""``m2m callback``: where the server posts status messages, and with which headers."""

from __future__ import annotations

from typing import Annotated

import typer

from m2m.cli.common import JsonOption, console, fail, print_json, print_table
from m2m.cli.remote import USAGE_ERROR, CaBundleOption, ConfigOption, ProfileOption, remote

app = typer.Typer(help="The callback URL that receives status messages.", no_args_is_help=True)


def parse_headers(pairs: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise fail(f"--header {pair!r}: expected NAME=VALUE", USAGE_ERROR)
        headers[name.strip()] = value
    return headers


@app.command("set")
def set_callback(
    url: Annotated[str, typer.Argument(help="Absolute http(s) URL that receives the messages.")],
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            "-H",
            help="NAME=VALUE sent with every message (Authorization or x-*); repeatable.",
            show_default=False,
        ),
    ] = None,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    ca_bundle: CaBundleOption = None,
) -> None:
    """Set the callback URL (replacing the URL and headers set before)."""
    headers = parse_headers(header or [])
    with remote(profile, config, ca_bundle) as (client, _):
        client.configure_callback(url, headers or None)
    console.print(f"Callback URL set to {url}", highlight=False, markup=False)


@app.command("show")
def show_callback(
    as_json: bool = JsonOption,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    ca_bundle: CaBundleOption = None,
) -> None:
    """Show the callback URL and header names, values masked (an m2m extension)."""
    with remote(profile, config, ca_bundle) as (client, _):
        current = client.get_callback()
    if as_json:
        print_json(current.model_dump(mode="json"))
        return
    rows = [("URL", current.url or "(none)")]
    rows += [(f"Header {name}", value) for name, value in current.headers.items()]
    print_table("Callback", ["Field", "Value"], rows)
