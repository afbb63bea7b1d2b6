#!/usr/bin/env python3
"""The project's two entry points, needing nothing but Python 3.11+:

    python3 scripts/run.py sandbox [serve options]   set up, then start the sandbox server
    python3 scripts/run.py test [pytest options]     set up, then run the whole test suite

Setting up means: a virtual environment in .venv with the project and its development tools,
reinstalled only when pyproject.toml changes. The tests also need PostgreSQL: the local server on
127.0.0.1:5432 (started here if it is installed but down), or the one M2M_TEST_POSTGRES_URL names;
and Debian's Chromium at /usr/bin/chromium for the console's browser tests (installed here with
apt-get when missing, as root or with sudo).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".m2m-installed"
# openapi-python-client (a test generates a client with it) pins typer and click versions the
# project cannot use, so it gets a virtual environment of its own inside .venv.
CODEGEN = VENV / "codegen"
CODEGEN_REQUIREMENT = "openapi-python-client==0.29.1"


def run(*command: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    result = subprocess.run([str(c) for c in command], cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)


def set_up() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - runs on whatever python3 the user has
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}.")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print(f"Creating {VENV} …", flush=True)
        venv.create(VENV, with_pip=True)
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted)


def set_up_codegen() -> None:
    """The code generator the tests run, in its own environment (for the test command only)."""
    stamp = CODEGEN / ".installed"
    if stamp.exists() and stamp.read_text() == CODEGEN_REQUIREMENT:
        return
    codegen_bin = CODEGEN / ("Scripts" if os.name == "nt" else "bin")
    if not (codegen_bin / "python").exists():
        venv.create(CODEGEN, with_pip=True)
    run(codegen_bin / "python", "-m", "pip", "install", "--quiet", CODEGEN_REQUIREMENT)
    stamp.write_text(CODEGEN_REQUIREMENT)


def sandbox(args: list[str]) -> None:
    set_up()
    command = [str(BIN / "m2m"), "serve", "--sandbox", *args]
    os.execv(command[0], command)


def postgres_is_up(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def ensure_postgres() -> None:
    """The suite runs every database test on PostgreSQL too: start the local server if needed."""
    if os.environ.get("M2M_TEST_POSTGRES_URL") or postgres_is_up():
        return
    clusters = Path("/etc/postgresql")
    if shutil.which("pg_ctlcluster") and clusters.is_dir():
        for version in sorted(p.name for p in clusters.iterdir()):
            print(f"Starting PostgreSQL {version} …", flush=True)
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                check=False,
            )
        for _ in range(30):
            if postgres_is_up():
                return
            time.sleep(1)
    sys.exit(
        "The tests need PostgreSQL: none answers on 127.0.0.1:5432 and none could be started "
        "here. Start one, or set M2M_TEST_POSTGRES_URL=postgresql://user@host:port/db (a role "
        "that may create databases)."
    )


CHROMIUM = Path("/usr/bin/chromium")


def ensure_chromium() -> None:
    """The console's browser tests drive Debian's Chromium (Playwright cannot download its own
    browser here): install the package if it is missing and we may (root, or sudo)."""
    if CHROMIUM.exists():
        return
    how = "apt-get install -y chromium (Debian's package, which provides /usr/bin/chromium)"
    if not shutil.which("apt-get"):
        sys.exit(f"The browser tests need Chromium at {CHROMIUM}; install it: {how}.")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        prefix: list[str] = []
    elif shutil.which("sudo"):
        prefix = ["sudo", "-n"]
    else:
        sys.exit(f"The browser tests need Chromium at {CHROMIUM}; as root, run: {how}.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, "apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    print("+", " ".join(install), flush=True)
    if subprocess.run(install, env=env, check=False).returncode != 0:
        run(*prefix, "apt-get", "update", env=env)  # the package lists may be stale
        run(*install, env=env)
    if not CHROMIUM.exists():
        sys.exit(f"Chromium was installed but {CHROMIUM} is missing; install it: {how}.")


def test(args: list[str]) -> None:
    set_up()
    set_up_codegen()
    ensure_postgres()
    ensure_chromium()
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    run(BIN / "mypy")
    run(BIN / "python", "-m", "pytest", "-n", "auto", *args)


def main() -> None:
    commands = {"sandbox": sandbox, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
