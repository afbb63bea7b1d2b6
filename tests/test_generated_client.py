"""A client generated from the served OpenAPI document by openapi-python-client (generated at
test time, never committed) performs the documented flow: a token with the client's credentials,
a SIM read, a deactivation and its status. What a user of any code generator depends on: the
document's operations, parameters, bodies and security describe the server as it is.

The generator lives in a virtual environment of its own (``.venv/codegen``, made by
``scripts/run.py``): it pins versions of typer and click the project cannot use.
"""

from __future__ import annotations

import base64
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET

GENERATOR = Path(sys.prefix) / "codegen" / "bin" / "openapi-python-client"
PACKAGE = "m2m_generated_client"


@pytest.fixture
def generated(sandbox_server: str, tmp_path: Path) -> Iterator[ModuleType]:
    assert GENERATOR.exists(), f"{GENERATOR} is missing: run python3 scripts/run.py test"
    document = tmp_path / "openapi.json"
    document.write_bytes(httpx.get(f"{sandbox_server}/openapi.json").content)
    config = tmp_path / "config.yaml"
    config.write_text("post_hooks: []\n")
    subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(document),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / PACKAGE),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _api(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.api.{name}")


def test_a_generated_client_performs_the_documented_flow(
    generated: ModuleType, sandbox_server: str
) -> None:
    client_module = importlib.import_module(f"{PACKAGE}.client")
    models = importlib.import_module(f"{PACKAGE}.models")

    # /token declares HTTP Basic client authentication: the generated authenticated client
    # carries it with the "Basic" prefix.
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    with client_module.AuthenticatedClient(
        base_url=sandbox_server, token=basic, prefix="Basic"
    ) as as_application:
        issued = _api("o_auth_2.token").sync(client=as_application, grant_type="client_credentials")
    assert issued.token_type == "Bearer"
    assert issued.expires_in > 0

    with client_module.AuthenticatedClient(
        base_url=sandbox_server, token=issued.access_token, headers={"x-api-key": API_KEY}
    ) as m2m:
        [sim] = _api("sim_cards.get_simcards").sync(client=m2m, msisdn="32470000002")
        device = models.RequestDeactivationBodyItemType0(
            identifier_type="MSISDN", identifier="32470000002"
        )
        accepted = _api("lifecycle_requests.request_deactivation").sync(
            client=m2m, body=[device], x_callback_token="encotest"
        )
        status = _api("lifecycle_requests.request_status").sync(
            client=m2m, tracking_number=accepted.tracking_number
        )
    assert sim.state.value == "Active"
    assert sim.device.identifier_type.value == "IMSI"
    assert status.tracking_number == accepted.tracking_number
    assert status.device_count == 1
    assert status.devices[0].identifier == "32470000002"
