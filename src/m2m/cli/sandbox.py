"""``m2m sandbox``: drive a running sandbox's clock and reset it from the command line.

A thin client of the sandbox's control API (``/sandbox/…``, docs/testing-your-integration.md),
which answers only callers on loopback: ``m2m sandbox advance 1d`` on the machine that runs
``m2m serve --sandbox`` moves the clock the whole server follows (token expiry, callback retries,
the simulated usage and its thresholds, the usage policy's reactivation at the next period).
It needs no credentials: the control API has none; only the server's URL (``--url``, else
``M2M_BASE_URL``, else the sandbox's default address).
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

from m2m.cli.common import JsonOption, console, fail, print_json

DEFAULT_URL = "http://127.0.0.1:8000"

app = typer.Typer(
    help="Drive a running sandbox (m2m serve --sandbox): move its clock, reset it.",
    no_args_is_help=True,
)

UrlOption = Annotated[
    str,
    typer.Option("--url", envvar="M2M_BASE_URL", help="The sandbox base URL (env: M2M_BASE_URL)."),
]


def _call(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The control API's answer; its refusal or an unreachable server as one red line."""
    try:
        answer = httpx.request(method, url.rstrip("/") + path, json=body, timeout=30)
    except httpx.HTTPError as error:
        raise fail(
            f"cannot reach the sandbox at {url} ({error}); is `m2m serve --sandbox` running there?"
        ) from error
    if answer.status_code == 404:
        raise fail(
            f"{url} has no sandbox control API: it is not a sandbox (m2m serve --sandbox), "
            "or it is not on this machine's loopback"
        )
    if answer.is_error:
        try:
            message = answer.json().get("error_description") or answer.text
        except ValueError:
            message = answer.text
        raise fail(f"the sandbox refused: {answer.status_code} {message}")
    return answer.json() if answer.content else None


def _show_clock(clock: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(clock)
        return
    offset = float(clock["offset_seconds"])
    how = "real time" if clock["realtime"] else f"{offset:+,.0f} s from real time"
    console.print(f"{clock['now']}  ({how})", highlight=False, soft_wrap=True)


@app.command("clock")
def clock(url: UrlOption = DEFAULT_URL, as_json: bool = JsonOption) -> None:
    """Print the sandbox's current time and how far it is from real time."""
    _show_clock(_call(url, "GET", "/sandbox/clock"), as_json)


@app.command("advance")
def advance(
    duration: Annotated[
        str, typer.Argument(help='How far: "90s", "15m", "1h", "1d", "31d", "1d12h"…')
    ],
    url: UrlOption = DEFAULT_URL,
    as_json: bool = JsonOption,
) -> None:
    """Move the sandbox's clock forward (what falls due in between happens within seconds)."""
    _show_clock(_call(url, "POST", "/sandbox/clock", {"advance": duration}), as_json)


@app.command("set")
def set_clock(
    moment: Annotated[str, typer.Argument(help="RFC 3339 with an offset: 2026-12-31T23:59:00Z")],
    url: UrlOption = DEFAULT_URL,
    as_json: bool = JsonOption,
) -> None:
    """Jump the sandbox's clock to a moment."""
    _show_clock(_call(url, "POST", "/sandbox/clock", {"set": moment}), as_json)


@app.command("realtime")
def realtime(url: UrlOption = DEFAULT_URL, as_json: bool = JsonOption) -> None:
    """Put the sandbox's clock back on real time."""
    _show_clock(_call(url, "POST", "/sandbox/clock", {"realtime": True}), as_json)


@app.command("reset")
def reset(url: UrlOption = DEFAULT_URL) -> None:
    """Back to the documented demo state: data, credentials, clock, faults, what was sent."""
    _call(url, "POST", "/sandbox/reset")
    console.print("The sandbox is back to its demo state.", highlight=False)
