"""The pytest plugin (``m2m.testing.plugin``), run as a user runs it: pytester writes a test
module, pytest runs it in a subprocess with the plugin, and the examples of
docs/testing-your-integration.md are run exactly as printed there."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "testing-your-integration.md"


def _plugin_args() -> list[str]:
    """``-p m2m.testing.plugin`` unless the installed package registers it already (loading it
    twice, under two names, is an error)."""
    installed = any(e.value == "m2m.testing.plugin" for e in entry_points(group="pytest11"))
    return [] if installed else ["-p", "m2m.testing.plugin"]


def _guide_files() -> dict[str, str]:
    """The guide's Python blocks whose first line names a file (``# my_m2m.py``)."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.DOTALL)
    named = {}
    for block in blocks:
        first, _, rest = block.partition("\n")
        if match := re.fullmatch(r"# (\w+\.py)", first):
            named[match.group(1)] = rest
    return named


def test_the_guides_examples_pass(pytester: pytest.Pytester) -> None:
    files = _guide_files()
    assert {"my_m2m.py", "test_my_m2m.py"} <= set(files)
    for name, source in files.items():
        pytester.path.joinpath(name).write_text(source, encoding="utf-8")
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_each_test_starts_from_the_demo_state(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx

        def state(sandbox, msisdn):
            token = sandbox.token()
            return httpx.get(
                f"{sandbox.base_url}/m2m/1.0.0/simcards?msisdn={msisdn}",
                headers={"Authorization": f"Bearer {token}", "x-api-key": sandbox.api_key},
            ).json()[0]["State"]

        def test_first_changes_things(m2m_sandbox):
            m2m_sandbox.clock.advance("2h")
            m2m_sandbox.faults.fail("32470000001")
            m2m_sandbox.load({"sims": [{"msisdn": "32470000001", "state": "Deactivated"}]})
            assert state(m2m_sandbox, "32470000001") == "Deactivated"

        def test_then_the_next_sees_none_of_it(m2m_sandbox):
            assert state(m2m_sandbox, "32470000001") == "Active"
            assert m2m_sandbox.faults.list() == []
            assert m2m_sandbox.clock.advance(0) is not None
            assert m2m_sandbox.deliveries() == []
            assert m2m_sandbox.callbacks.received == []
        """
    )
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_under_xdist_each_worker_has_its_own_sandbox(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os

        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_sandbox(m2m_sandbox, n):
            print("SANDBOX", os.environ.get("PYTEST_XDIST_WORKER"), m2m_sandbox.base_url)
            m2m_sandbox.clock.advance("1h")  # would leak into a neighbour sharing the server
            assert m2m_sandbox.clock.now() is not None
        """
    )
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4)


def test_loading_the_plugin_starts_nothing_and_imports_no_server() -> None:
    code = (
        "import sys, m2m.testing.plugin\n"
        "heavy = ('sqlalchemy', 'fastapi', 'httpx', 'm2m.sandbox')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
