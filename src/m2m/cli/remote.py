"""What the client commands share: the connection options, the SDK client, one-line errors.

Exit codes: 0 done; 1 the server refused or could not be reached; 2 a usage or configuration
mistake; 3 (``--wait``) every request finished but some devices failed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from m2m.cli.common import err_console, fail
from m2m.cli.devices_file import DevicesFileError
from m2m.cli.profile import Connection, ProfileError, resolve
from m2m.client import M2MClient, M2MClientError

USAGE_ERROR = 2

ProfileOption = Annotated[
    str | None,
    typer.Option("--profile", "-p", help="Profile of the config file to use (env: M2M_PROFILE)."),
]
CaBundleOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-bundle",
        help="PEM file of the CA (or self-signed) certificates to trust for an https:// server, "
        "instead of the system's (env: M2M_CA_BUNDLE; profile: ca_bundle).",
        dir_okay=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Config file (env: M2M_CONFIG; default: $XDG_CONFIG_HOME/m2m/config.toml).",
        dir_okay=False,
    ),
]


def connection(
    profile: str | None, config: Path | None, ca_bundle: Path | None = None
) -> Connection:
    try:
        found = resolve(os.environ, profile, config, ca_bundle)
    except ProfileError as error:
        raise fail(str(error), USAGE_ERROR) from error
    for warning in found.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    return found


@contextmanager
def remote(
    profile: str | None, config: Path | None, ca_bundle: Path | None = None
) -> Iterator[tuple[M2MClient, Connection]]:
    """An SDK client for the configured server; its errors become one red line."""
    found = connection(profile, config, ca_bundle)
    with user_mistakes():
        client = M2MClient(
            found.base_url,
            found.client_id,
            found.client_secret,
            found.api_key,
            token=found.token,
            verify=found.ca_bundle or True,
        )
    with client, api_errors(), user_mistakes():
        yield client, found


@contextmanager
def user_mistakes() -> Iterator[None]:
    try:
        yield
    except (ValueError, DevicesFileError) as error:
        raise fail(str(error), USAGE_ERROR) from error


@contextmanager
def api_errors() -> Iterator[None]:
    try:
        yield
    except M2MClientError as error:
        message = str(error)
        if "CERTIFICATE_VERIFY_FAILED" in message:
            message += (
                "; if the server's certificate comes from a private CA (or is self-signed), "
                "trust it with --ca-bundle FILE (or M2M_CA_BUNDLE, or ca_bundle in the profile)"
            )
        raise fail(message) from error
