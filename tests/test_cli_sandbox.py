"""``m2m sandbox``: the clock and the reset of a running sandbox, from the command line, against
the real server on loopback (both databases)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from typer.testing import CliRunner, Result

from m2m.cli.main import app
from tests.support.servers import free_port


def _m2m(url: str, *args: str, exit_code: int = 0) -> Result:
    result = CliRunner().invoke(app, ["sandbox", *args], env={"M2M_BASE_URL": url})
    assert result.exit_code == exit_code, (result.output, result.exception)
    return result


def _now(url: str) -> datetime:
    return datetime.fromisoformat(json.loads(_m2m(url, "clock", "--json").output)["now"])


def test_advance_moves_the_clock_the_server_follows(sandbox_server: str) -> None:
    before = _now(sandbox_server)
    shown = _m2m(sandbox_server, "advance", "1d").output
    after = _now(sandbox_server)
    assert timedelta(days=1) <= after - before < timedelta(days=1, minutes=1)
    assert shown.startswith(after.isoformat().replace("+00:00", "Z")[:16]), shown


def test_set_then_realtime(sandbox_server: str) -> None:
    _m2m(sandbox_server, "set", "2030-01-31T23:59:00Z")
    assert _now(sandbox_server) >= datetime.fromisoformat("2030-01-31T23:59:00+00:00")
    shown = _m2m(sandbox_server, "realtime").output
    assert "(real time)" in shown  # not "… s from real time"
    assert _now(sandbox_server).year < 2030


def test_a_bad_duration_is_the_server_s_refusal_in_one_line(sandbox_server: str) -> None:
    result = _m2m(sandbox_server, "advance", "soon", exit_code=1)
    assert "the sandbox refused: 4" in result.output
    assert "Traceback" not in result.output


def test_reset_puts_the_clock_back(sandbox_server: str) -> None:
    _m2m(sandbox_server, "advance", "31d")
    assert "demo state" in _m2m(sandbox_server, "reset").output
    assert json.loads(_m2m(sandbox_server, "clock", "--json").output)["realtime"] is True


def test_no_server_says_so() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = _m2m(url, "clock", exit_code=1)
    assert "cannot reach the sandbox" in result.output
    assert "m2m serve --sandbox" in result.output
