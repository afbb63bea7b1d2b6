"""The SDK examples of docs/sdk.md run as written (with the test server's address)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs" / "sdk.md"
SANDBOX_URL = "http://127.0.0.1:8000"


def python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)


def run_example(code: str, base_url: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code.replace(SANDBOX_URL, base_url))
    runpy.run_path(str(script), run_name="__main__")


def test_the_examples_run_against_the_sandbox(
    sandbox_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "devices.csv").write_text("msisdn\n32470000007\n32470000008\n32470000013\n")
    first, ten_lines, concurrent = python_examples()[:3]
    assert len(ten_lines.strip().splitlines()) <= 10
    for code in (first, ten_lines, concurrent):
        run_example(code, sandbox_server, tmp_path)
    printed = capsys.readouterr().out
    assert "Active" in printed
    assert re.search(r"[0-9a-f-]{36} 2 1\n", printed)  # 7 and 8 deactivated, 13 always fails


def test_the_listing_example_runs_against_the_sandbox(
    sandbox_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (listing,) = [code for code in python_examples() if ".sims(" in code]
    run_example(listing, sandbox_server, tmp_path)
    printed = capsys.readouterr().out
    # No demo SIM has the label site=ghent; all 100 were written after the example's time.
    assert printed == "100 32470000001\n"
