"""The client commands and the SDK against an HTTPS server whose certificate a private CA
signed (a self-hosted deployment): trusted with --ca-bundle, M2M_CA_BUNDLE or the profile's
ca_bundle; refused, saying what to do, without."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from sqlalchemy import Engine
from typer.testing import CliRunner

from m2m.asgi import create_app
from m2m.cli.main import app as cli_app
from m2m.client import M2MClient
from m2m.clock import ManualClock
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET
from m2m.settings import Settings
from tests.support.servers import free_port, run_server


@pytest.fixture
def ca_bundle(tmp_path: Path) -> tuple[Path, Path, Path]:
    authority = trustme.CA()
    server = authority.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"


@pytest.fixture
def https_server(
    settings: Settings,
    engine: Engine,
    clock: ManualClock,
    seeded: None,
    ca_bundle: tuple[Path, Path, Path],
) -> Iterator[str]:
    _, cert, key = ca_bundle
    production = settings.model_copy(update={"sandbox": False, "embedded_worker": False})
    app = create_app(production, engine=engine, clock=clock)
    with run_server(app, free_port(), tls=(cert, key)) as base_url:
        yield base_url


def _environment(base_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "M2M_BASE_URL": base_url,
        "M2M_CLIENT_ID": CLIENT_ID,
        "M2M_CLIENT_SECRET": CLIENT_SECRET,
        "M2M_API_KEY": API_KEY,
        "M2M_CONFIG": "",
        "XDG_CONFIG_HOME": str(tmp_path / "no-config"),
        "M2M_CA_BUNDLE": "",
        **extra,
    }


def test_the_cli_trusts_a_private_ca_only_when_told(
    https_server: str, ca_bundle: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    ca, _, _ = ca_bundle
    runner = CliRunner()
    get = ["sim", "get", "32470000001", "--json"]

    refused = runner.invoke(cli_app, get, env=_environment(https_server, tmp_path))
    assert refused.exit_code == 1
    assert "certificate" in refused.stderr.lower()
    assert "--ca-bundle" in refused.stderr

    by_option = runner.invoke(
        cli_app, [*get, "--ca-bundle", str(ca)], env=_environment(https_server, tmp_path)
    )
    assert by_option.exit_code == 0, by_option.output
    assert json.loads(by_option.stdout)[0]["State"] == "Active"

    by_environment = runner.invoke(
        cli_app, get, env=_environment(https_server, tmp_path, M2M_CA_BUNDLE=str(ca))
    )
    assert by_environment.exit_code == 0, by_environment.output


def test_a_missing_ca_bundle_is_a_usage_error(https_server: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app,
        ["sim", "get", "32470000001", "--ca-bundle", str(tmp_path / "nope.pem")],
        env=_environment(https_server, tmp_path),
    )
    assert result.exit_code == 2
    assert "nope.pem" in result.stderr


def test_the_sdk_takes_the_ca_bundle_as_verify(
    https_server: str, ca_bundle: tuple[Path, Path, Path]
) -> None:
    ca, _, _ = ca_bundle
    with M2MClient(https_server, CLIENT_ID, CLIENT_SECRET, API_KEY, verify=str(ca)) as client:
        assert client.get_sim("32470000001").state == "Active"
