"""The ``m2m`` command loads a subcommand's dependencies only when that subcommand runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m2m.cli.main import app

HEAVY = ("fastapi", "uvicorn", "aiohttp", "sqlalchemy", "alembic", "httpx", "jinja2")

PROBE = """
import json, sys
from m2m.cli.main import app
try:
    app(sys.argv[1:], prog_name="m2m")
except SystemExit:
    pass
print(json.dumps(sorted(name for name in {heavy!r} if name in sys.modules)), file=sys.stderr)
"""


def loaded_after(*args: str) -> list[str]:
    """The heavy packages imported by running ``m2m ARGS`` in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("version",), []),
        (("sim", "get", "--help"), ["httpx"]),
        (("token", "--help"), ["httpx"]),
        (("admin", "accounts", "list", "--help"), ["sqlalchemy"]),
    ],
)
def test_a_subcommand_loads_only_what_it_uses(args: tuple[str, ...], expected: list[str]) -> None:
    assert loaded_after(*args) == expected


def test_help_lists_every_subcommand_once_loaded_or_not() -> None:
    m2m = Path(sys.executable).with_name("m2m")  # the console script, installed beside python
    fresh = subprocess.run([m2m, "--help"], capture_output=True, text=True, check=True).stdout
    runner = CliRunner()
    runner.invoke(app, ["db", "--help"])  # loads one subcommand before the listing
    after_loading = runner.invoke(app, ["--help"]).output
    expected = [
        "version",
        "db",
        "admin",
        "serve",
        "worker",
        "listen",
        "sim",
        "callback",
        "token",
        "audit",
        "events",
        "usage",
        "sandbox",
    ]
    for shown in (fresh, after_loading):
        assert re.findall(r"^│ (\w+) ", shown, flags=re.MULTILINE) == expected


@pytest.mark.parametrize(
    "args", [("sim", "deactivate"), ("admin", "accounts", "list"), ("serve",), ("listen",)]
)
def test_flags_show_no_value_in_help(args: tuple[str, ...]) -> None:
    """``--wait <bool>`` read as if the flag took a value ("--wait true" then made "true" a
    device): flags are shown bare, options with a value keep their type."""
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help" in result.output
