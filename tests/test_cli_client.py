"""The client commands (``m2m sim``, ``callback``, ``token``), in-process, against the real server
on loopback; configuration from the environment and from profile files."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from m2m.cli.main import app
from m2m.client import M2MClient
from m2m.sandbox import API_KEY, CLIENT_ID, CLIENT_SECRET
from m2m.storage.tables import lifecycle_requests
from tests.support.receiver import Receiver
from tests.support.servers import documented_only, free_port, run_server
from tests.support.sims import count
from tests.support.tenants import Tenant
from tests.support.waiting import wait_for

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
Cli = Callable[..., Result]
UNSET = ("M2M_PROFILE", "M2M_CONFIG", "M2M_TOKEN", "M2M_CALLBACK_TOKEN")


def runner_for(base_env: dict[str, str | None]) -> Cli:
    runner = CliRunner()

    def invoke(*args: str, exit_code: int = 0, env: dict[str, str | None] | None = None) -> Result:
        result = runner.invoke(app, list(args), env={**base_env, **(env or {})})
        assert result.exit_code == exit_code, (result.exit_code, result.output, result.exception)
        if exit_code:
            assert isinstance(result.exception, SystemExit), result.exception  # no traceback
        return result

    return invoke


@pytest.fixture
def xdg(tmp_path: Path) -> Path:
    """An empty config home: the developer's own ~/.config/m2m never leaks into a test."""
    return tmp_path / "xdg"


@pytest.fixture
def cli(sandbox_server: str, xdg: Path) -> Cli:
    """``m2m …`` configured for the sandbox through the environment."""
    return runner_for(
        {
            "M2M_BASE_URL": sandbox_server,
            "M2M_CLIENT_ID": CLIENT_ID,
            "M2M_CLIENT_SECRET": CLIENT_SECRET,
            "M2M_API_KEY": API_KEY,
            "XDG_CONFIG_HOME": str(xdg),
            **dict.fromkeys(UNSET),
        }
    )


@pytest.fixture
def bare_cli(xdg: Path) -> Cli:
    """``m2m …`` with no configuration in the environment at all."""
    names = ["M2M_BASE_URL", "M2M_CLIENT_ID", "M2M_CLIENT_SECRET", "M2M_API_KEY", *UNSET]
    return runner_for({"XDG_CONFIG_HOME": str(xdg), **dict.fromkeys(names)})


def one_line_error(result: Result) -> str:
    """The error: one line, the last on stderr (progress bars may come before it)."""
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert lines[-1] == errors[0]
    assert "Traceback" not in result.output
    return errors[0].removeprefix("error: ")


def tracking_numbers(result: Result) -> list[str]:
    return [line for line in result.stdout.splitlines() if UUID.fullmatch(line)]


# --- sim get ------------------------------------------------------------------------------------


def test_sim_get_prints_a_table(cli: Cli) -> None:
    out = cli("sim", "get", "32470000001").stdout
    assert "SIM 32470000001" in out
    assert "Active" in out
    assert "M2M-DATA-1GB" in out
    assert "m2m.sandbox.example" in out


def test_sim_get_json_is_the_api_answer(cli: Cli, sandbox_server: str) -> None:
    printed = json.loads(cli("sim", "get", "32470000060", "--json").stdout)
    with M2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as m2m:
        sim = m2m.get_sim("32470000060")
    assert printed == [sim.model_dump(mode="json", by_alias=True)]
    assert printed[0]["State"] == "Ready"
    assert "DailyTreshold" in printed[0]["DataService"]


@pytest.mark.parametrize(
    ("msisdn", "message"),
    [
        (
            "32479999999",
            "No SIM card with MSISDN 32479999999 in your account. (not_found, HTTP 404)",
        ),
        ("12ab", "query.msisdn: must be 8 to 15 digits, optionally after a +"),
    ],
)
def test_sim_get_errors_are_one_line(cli: Cli, msisdn: str, message: str) -> None:
    assert message in one_line_error(cli("sim", "get", msisdn, exit_code=1))


def test_credential_errors_are_one_line(cli: Cli) -> None:
    wrong = cli("sim", "get", "32470000001", exit_code=1, env={"M2M_API_KEY": "nope"})
    assert "invalid_api_key" in one_line_error(wrong)
    secret = cli("sim", "get", "32470000001", exit_code=1, env={"M2M_CLIENT_SECRET": "nope"})
    assert "invalid_client" in one_line_error(secret)
    assert "nope" not in secret.output  # secrets are never echoed


def test_an_unreachable_server_is_one_line(bare_cli: Cli) -> None:
    env: dict[str, str | None] = {
        "M2M_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "M2M_API_KEY": API_KEY,
        "M2M_TOKEN": "permanent",
    }
    result = bare_cli("sim", "get", "32470000001", exit_code=1, env=env)
    assert one_line_error(result).startswith("GET /m2m/1.0.0/simcards failed: ")


def test_a_permanent_token(cli: Cli, tenant: Tenant) -> None:
    env: dict[str, str | None] = {
        "M2M_TOKEN": tenant.permanent_token,
        "M2M_API_KEY": tenant.api_key,
        "M2M_CLIENT_ID": None,
        "M2M_CLIENT_SECRET": None,
    }
    not_theirs = cli("sim", "get", "32470000001", exit_code=1, env=env)
    assert "not_found" in one_line_error(not_theirs)  # the token works; the SIM is not theirs
    assert cli("token", env=env).stdout.strip() == tenant.permanent_token
    refused = cli("token", "revoke", exit_code=1, env=env)
    assert "delete it in the console" in one_line_error(refused)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["sim", "get", "32470000001"], {"M2M_API_KEY": "clé"}, "api_key may only hold printable"),
        (
            ["sim", "deactivate", "32470000001", "--callback-token", "é"],
            {},
            "callback_token may only hold printable ASCII",
        ),
        (["token"], {"M2M_BASE_URL": "127.0.0.1:8000"}, "base_url must be an http(s) URL"),
    ],
)
def test_bad_values_are_refused_before_anything_is_sent(
    bare_cli: Cli, args: list[str], env: dict[str, str], message: str
) -> None:
    configured: dict[str, str | None] = {
        "M2M_BASE_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens: nothing is sent
        "M2M_API_KEY": API_KEY,
        "M2M_TOKEN": "permanent",
    }
    result = bare_cli(*args, exit_code=2, env={**configured, **env})
    assert message in one_line_error(result)
    assert len(result.stderr.strip().splitlines()) == 1


# --- lifecycle requests -------------------------------------------------------------------------


def test_deactivate_prints_the_tracking_number(cli: Cli, sandbox_server: str) -> None:
    result = cli("sim", "deactivate", "32470000002", "+32470000003")
    [number] = tracking_numbers(result)
    assert result.stdout.strip() == number  # nothing else on stdout: scripts read it
    with M2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as m2m:
        [status] = m2m.wait([number], poll_seconds=0.05)
    assert status.operation == "deactivation"
    assert {d.identifier for d in status.devices} == {"32470000002", "32470000003"}


def test_wait_prints_a_summary_and_fails_when_a_device_failed(cli: Cli) -> None:
    done = cli("sim", "activate", "32470000051", "32470000052", "--wait", "--poll-seconds", "0.05")
    [number] = tracking_numbers(done)
    assert re.search(rf"{number}\s+2\s+2\s+0\s", done.stdout)  # devices, OK, failed
    assert "Activation requests" in done.stdout

    # 32470000066 is a test SIM that always fails: exit code 3, and the reason on stderr.
    failed = cli("sim", "activate", "32470000066", "--wait", "--poll-seconds", "0.05", exit_code=3)
    assert "1 device(s) failed" in failed.stderr
    assert "MSISDN 32470000066: Network error" in failed.stderr


def test_devices_from_a_file_of_any_shape(cli: Cli, tmp_path: Path, sandbox_server: str) -> None:
    inventory = tmp_path / "inventory.csv"
    inventory.write_text("iccid,imsi,msisdn,state\n1,2,32470000053,Ready\n3,4,32470000054,Ready\n")
    typed = tmp_path / "typed.csv"
    typed.write_text("# two devices\n32470000055,MSISDN\n\n206011000000056,imsi\n")
    first = cli("sim", "activate", "-f", str(inventory), "--batch-size", "1")
    second = cli("sim", "activate", "--from-file", str(typed), "32470000057")
    numbers = tracking_numbers(first) + tracking_numbers(second)
    assert len(numbers) == 3  # batches of one, then one request
    with M2MClient(sandbox_server, CLIENT_ID, CLIENT_SECRET, API_KEY) as m2m:
        statuses = m2m.wait(numbers, poll_seconds=0.05)
    assert [[d.identifier for d in s.devices] for s in statuses] == [
        ["32470000053"],
        ["32470000054"],
        ["32470000057", "32470000055", "206011000000056"],
    ]
    assert all(s.count("Success") == s.device_count for s in statuses)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("32470000001\nabc\n12\n", "2 bad line(s): line 2: MSISDN must be 8 to 15 digits ('abc')"),
        ("serial,name\n1,a\n", "line 1: the header has neither an 'identifier' nor a 'msisdn'"),
        ("32470000001,SIM\n", "line 1: unknown identifier type 'SIM'"),
        ("", "no devices"),
    ],
)
def test_a_bad_file_sends_nothing(
    cli: Cli, tmp_path: Path, engine: Engine, content: str, message: str
) -> None:
    path = tmp_path / "devices.csv"
    path.write_text(content)
    result = cli("sim", "deactivate", "--from-file", str(path), exit_code=2)
    assert message in one_line_error(result)
    assert count(engine, lifecycle_requests) == 0


def test_a_missing_file_and_no_devices(cli: Cli, tmp_path: Path) -> None:
    missing = cli("sim", "terminate", "--from-file", str(tmp_path / "nope.csv"), exit_code=2)
    assert "cannot read" in one_line_error(missing)
    assert "no devices" in one_line_error(cli("sim", "terminate", exit_code=2))


@pytest.fixture
def documented_server(app: FastAPI, seeded: None) -> Iterator[str]:
    """A server with only the documented endpoints (GET /requests/{…} answers 404)."""
    with run_server(documented_only(app, 404), free_port()) as base_url:  # type: ignore[arg-type]
        yield base_url


def test_wait_needs_the_request_status_extension(cli: Cli, documented_server: str) -> None:
    result = cli(
        "sim", "deactivate", "32470000004", "--wait", exit_code=1,
        env={"M2M_BASE_URL": documented_server},
    )  # fmt: skip
    assert len(tracking_numbers(result)) == 1  # the request was made: its number is printed
    assert one_line_error(result) == (
        "this server does not offer request status (GET /m2m/1.0.0/requests/{TrackingNumber}, "
        "an m2m extension); --wait needs it"
    )


# --- callback, token ----------------------------------------------------------------------------


def test_callback_set_with_headers(cli: Cli, receiver: Receiver) -> None:
    result = cli(
        "callback", "set", receiver.url, "-H", "x-team=ops", "--header", "Authorization=Bearer abc"
    )
    assert receiver.url in result.stdout
    shown = cli("callback", "show", "--json").stdout
    assert json.loads(shown)["url"] == receiver.url
    assert "abc" not in shown  # values are masked
    cli("sim", "deactivate", "32470000006", "--callback-token", "from-cli")
    wait_for(lambda: receiver.count() >= 1, 60, "the callback")
    headers = receiver.received[0].headers
    assert (headers["x-team"], headers["authorization"]) == ("ops", "Bearer abc")
    assert headers["x-callback-token"] == "from-cli"


def test_callback_set_refusals(cli: Cli) -> None:
    assert "expected NAME=VALUE" in one_line_error(
        cli("callback", "set", "http://127.0.0.1:9/", "-H", "x-novalue", exit_code=2)
    )
    assert "only Authorization and x-* headers" in one_line_error(
        cli("callback", "set", "http://127.0.0.1:9/", "-H", "Cookie=a", exit_code=1)
    )


def test_token_prints_and_revokes(cli: Cli) -> None:
    first = cli("token").stdout.strip()
    assert cli("token").stdout.strip() == first  # single active token
    assert "revoked" in cli("token", "revoke").stdout
    assert cli("token").stdout.strip() != first


# --- configuration ------------------------------------------------------------------------------


def write_config(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def profiles(base_url: str, default: str = "sandbox") -> str:
    return f"""
default_profile = "{default}"

[profiles.sandbox]
base_url = "{base_url}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
api_key = "{API_KEY}"

[profiles.broken]
base_url = "{base_url}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
api_key = "not-the-key"
"""


def test_nothing_configured(bare_cli: Cli, xdg: Path) -> None:
    result = bare_cli("sim", "get", "32470000001", exit_code=2)
    expected = f"no server configured: set M2M_BASE_URL or add a profile to {xdg}/m2m/config.toml"
    assert one_line_error(result) == expected


def test_profiles_from_the_xdg_config_home(bare_cli: Cli, sandbox_server: str, xdg: Path) -> None:
    write_config(xdg / "m2m" / "config.toml", profiles(sandbox_server))
    assert "Active" in bare_cli("sim", "get", "32470000001").stdout  # default_profile
    broken = bare_cli("sim", "get", "32470000001", "--profile", "broken", exit_code=1)
    assert "invalid_api_key" in one_line_error(broken)
    by_env = bare_cli("sim", "get", "32470000001", exit_code=1, env={"M2M_PROFILE": "broken"})
    assert "invalid_api_key" in one_line_error(by_env)
    # Environment variables win over the profile's values.
    fixed = bare_cli("sim", "get", "32470000001", "-p", "broken", env={"M2M_API_KEY": API_KEY})
    assert "Active" in fixed.stdout
    unknown = bare_cli("sim", "get", "32470000001", "--profile", "prod", exit_code=2)
    assert "no profile 'prod'" in one_line_error(unknown)
    assert "broken, sandbox" in one_line_error(unknown)


def test_an_explicit_config_file(bare_cli: Cli, sandbox_server: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "elsewhere.toml", profiles(sandbox_server))
    assert "Active" in bare_cli("sim", "get", "32470000001", "--config", str(config)).stdout
    by_env = bare_cli("sim", "get", "32470000001", env={"M2M_CONFIG": str(config)})
    assert "Active" in by_env.stdout
    missing = bare_cli("token", "--config", str(tmp_path / "nope.toml"), exit_code=2)
    assert "no configuration file at" in one_line_error(missing)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_profile_file_others_can_read_is_warned_about(
    bare_cli: Cli, sandbox_server: str, xdg: Path
) -> None:
    path = write_config(xdg / "m2m" / "config.toml", profiles(sandbox_server), mode=0o644)
    result = bare_cli("sim", "get", "32470000001")
    assert f"warning: {path} holds secrets and other users can read it" in result.stderr
    path.chmod(0o600)
    assert "warning" not in bare_cli("sim", "get", "32470000001").stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default_profile = 'x'\n[profiles.x\n", "cannot read"),
        ("[profiles.x]\nbase_url = 'http://h'\napi_kye = 'k'\n", "unknown keys api_kye"),
        ("[profiles.x]\nbase_url = 1\n", "every value must be a string"),
        ("[profiles.x]\nbase_url = 'http://h'\napi_key = 'k'\n", "no credentials configured"),
        ("[profiles.x]\nbase_url = 'h'\napi_key = 'k'\ntoken = 't'\n", "base_url must be"),
    ],
)
def test_bad_profile_files(bare_cli: Cli, xdg: Path, text: str, message: str) -> None:
    write_config(xdg / "m2m" / "config.toml", text)
    result = bare_cli("sim", "get", "32470000001", "--profile", "x", exit_code=2)
    assert message in one_line_error(result)


def test_sim_list_streams_json_lines_across_pages(cli: Cli) -> None:
    result = cli("sim", "list", "--state", "Ready", "--page-size", "7", "--json")
    sims = [json.loads(line) for line in result.stdout.splitlines()]
    assert [sim["MSISDN"] for sim in sims] == [str(32470000000 + n) for n in range(51, 91)]
    assert {sim["State"] for sim in sims} == {"Ready"}
    assert all(sim["ICCID"] and sim["Device"]["IdentifierType"] == "IMSI" for sim in sims)


def test_sim_list_filters_and_limit(cli: Cli) -> None:
    result = cli("sim", "list", "--msisdn-prefix", "3247000000", "--limit", "3")
    header, *lines = result.stdout.splitlines()
    assert header.split("\t") == ["ICCID", "MSISDN", "IMSI", "State", "Cost center"]
    assert [line.split("\t")[1] for line in lines] == ["32470000001", "32470000002", "32470000003"]
    nothing = cli("sim", "list", "--label", "nowhere", "--custom-field", "3=x", "--json")
    assert nothing.stdout == ""


def test_sim_list_mistakes(cli: Cli) -> None:
    bad_field = cli("sim", "list", "--custom-field", "9=x", exit_code=2)
    assert "--custom-field" in one_line_error(bad_field)
    refused = cli("sim", "list", "--state", "Sleeping", exit_code=1)
    assert "state" in one_line_error(refused)


# --- audit --------------------------------------------------------------------------------------


def test_audit_prints_one_line_an_event_and_json_lines(cli: Cli) -> None:
    cli("callback", "set", "http://127.0.0.1:9/one")
    cli("callback", "set", "http://127.0.0.1:9/two")
    result = cli("audit", "--action", "callback.")
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert f"application:{CLIENT_ID}  callback.configured" in lines[0]
    assert "url: http://127.0.0.1:9/one → http://127.0.0.1:9/two" in lines[0]

    events = [
        json.loads(line) for line in cli("audit", "--json", "--limit", "1").stdout.splitlines()
    ]
    assert [e["action"] for e in events] == ["callback.configured"]
    assert events[0]["changes"]["url"]["after"] == "http://127.0.0.1:9/two"


def test_audit_follows_every_page(cli: Cli) -> None:
    for n in range(3):
        cli("callback", "set", f"http://127.0.0.1:9/{n}")
    shown = cli("audit", "--json", "--page-size", "1").stdout.splitlines()
    assert [json.loads(line)["changes"]["url"]["after"] for line in shown] == [
        f"http://127.0.0.1:9/{n}" for n in (2, 1, 0)
    ]
    assert len(cli("audit", "--json", "--page-size", "1", "--limit", "2").stdout.splitlines()) == 2


def test_a_bad_audit_filter_is_one_line(cli: Cli) -> None:
    result = cli("audit", "--since", "yesterday", exit_code=1)
    assert "since" in one_line_error(result)
