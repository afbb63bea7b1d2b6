"""``m2m token``: print the access token calls are made with, or revoke it."""

from __future__ import annotations

import typer

from m2m.cli.common import console
from m2m.cli.remote import CaBundleOption, ConfigOption, ProfileOption, remote

app = typer.Typer(
    help="Print the access token (a secret, for curl and the like), or revoke it.",
    invoke_without_command=True,
)


@app.callback()
def token(
    ctx: typer.Context,
    profile: ProfileOption = None,
    config: ConfigOption = None,
    ca_bundle: CaBundleOption = None,
) -> None:
    """Print the access token (a secret: that is this command's purpose), for curl and the like.

    The server hands back the same token while it is valid (single active token).
    """
    if ctx.invoked_subcommand is not None:
        return
    with remote(profile, config, ca_bundle) as (client, _):
        value = client.access_token()
    console.print(value, highlight=False, markup=False, soft_wrap=True)


@app.command("revoke")
def revoke(
    profile: ProfileOption = None, config: ConfigOption = None, ca_bundle: CaBundleOption = None
) -> None:
    """Revoke the application's current access token; the next call gets a new one."""
    with remote(profile, config, ca_bundle) as (client, _):
        client.revoke_token()
    console.print("Access token revoked.")
