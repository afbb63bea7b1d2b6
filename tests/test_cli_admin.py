"""``m2m admin``: the operator's commands, run in-process against the test's own database.

The credentials the CLI hands out are then used for real against the API (the ``client``
fixture serves the same database file).
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select, text, update
from typer.testing import CliRunner, Result

from m2m.audit import ADMIN_CLI
from m2m.callbacks import signing_secret
from m2m.cli import admin
from m2m.cli.main import app
from m2m.clock import ManualClock
from m2m.identifiers import luhn_check_digit
from m2m.settings import Settings
from m2m.storage import audit as audit_store
from m2m.storage import request_intake, usage_ingest
from m2m.storage.engine import make_engine, write_transaction
from m2m.storage.migrate import alembic_config, upgrade
from m2m.storage.tables import (
    access_tokens,
    callback_attempts,
    callback_deliveries,
    idempotency_keys,
    lifecycle_requests,
    oauth_apps,
    request_items,
    sim_cards,
    usage_account_daily,
    usage_daily,
    usage_hourly,
)
from m2m.storage.tables import accounts as accounts_table
from m2m.usage import Totals
from m2m.usage_records import UsageRecord
from tests.support.api import get_sim
from tests.support.audit import AuditWatch, audit_rows, stored_text
from tests.support.console import console_client, log_in
from tests.support.constants import SECRET_KEY
from tests.support.sims import add_active_sims
from tests.support.tenants import Tenant

Cli = Callable[..., Result]


@pytest.fixture
def cli(database_url: str) -> Cli:
    """Run ``m2m admin ARGS…`` on the test's database; the result must have ``exit_code``."""
    runner = CliRunner()

    def invoke(*args: str, exit_code: int = 0) -> Result:
        result = runner.invoke(app, ["admin", *args], env={"M2M_DATABASE_URL": database_url})
        assert result.exit_code == exit_code, (result.exit_code, result.output, result.exception)
        return result

    return invoke


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, message: str) -> None:
    """Exit code 1 already checked by ``cli``: a single red line on stderr, no traceback."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.strip().splitlines() == [f"error: {message}"]
    assert "Traceback" not in result.output


_account_numbers = itertools.count(1)


def new_account(cli: Cli, name: str | None = None) -> dict[str, Any]:
    """A new account through the CLI, named ``name`` or a name of its own."""
    name = name or f"Acme {next(_account_numbers)}"
    created: dict[str, Any] = as_json(cli("accounts", "create", name, "--json"))
    return created


def account_row(cli: Cli, account_id: int) -> dict[str, Any]:
    rows = as_json(cli("accounts", "list", "--json"))
    [row] = [r for r in rows if r["account_id"] == account_id]
    return dict(row)


def account_with_a_sim_and_a_token(
    cli: Cli, tmp_path: Path
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A new account (with its API key), one SIM's MSISDN, and a permanent token of it."""
    account = new_account(cli)
    msisdn = import_one_sim(cli, tmp_path, account["account_id"])
    account_id = str(account["account_id"])
    token = as_json(cli("tokens", "create", "--account", account_id, "--name", "ci", "--json"))
    return account, msisdn, token


def import_one_sim(cli: Cli, tmp_path: Path, account_id: int, n: int = 1) -> str:
    """Import one SIM through the CLI; returns its MSISDN."""
    payload = f"8944{n:014d}"
    msisdn = f"447{n:09d}"
    path = tmp_path / f"sim-{n}.csv"
    path.write_text(
        "iccid,imsi,msisdn,state\n"
        f"{payload}{luhn_check_digit(payload)},23415{n:010d},+{msisdn},Active\n",
        encoding="utf-8",
    )
    report = as_json(cli("sims", "import", str(path), "--account", str(account_id), "--json"))
    assert report == {"rows": 1, "imported": 1, "errors": []}
    return msisdn


# --- accounts -------------------------------------------------------------------------------


def test_accounts_create_json_gives_the_id_and_a_first_api_key(cli: Cli) -> None:
    first = new_account(cli, "Acme")
    second = new_account(cli, "Globex")

    assert set(first) == {"account_id", "api_key"}
    assert isinstance(first["account_id"], int)
    assert second["account_id"] != first["account_id"]
    assert first["api_key"].startswith("m2mk_")
    assert first["api_key"] != second["api_key"]


def test_accounts_create_without_json_shows_the_key_and_warns_it_is_shown_once(cli: Cli) -> None:
    result = cli("accounts", "create", "Acme")

    assert "api_key: m2mk_" in result.stdout
    assert "cannot be shown again" in result.stdout


def test_accounts_list_shows_a_new_account_active_with_its_counts(cli: Cli) -> None:
    created = new_account(cli, "Acme")

    row = account_row(cli, created["account_id"])

    assert row["name"] == "Acme"
    assert row["subscription"] == "active"
    assert row["is_sandbox"] is False
    assert (row["sims"], row["api_keys"], row["apps"], row["permanent_tokens"]) == (0, 1, 0, 0)


def test_accounts_list_counts_what_the_account_holds(cli: Cli, tmp_path: Path) -> None:
    account_id = new_account(cli)["account_id"]
    other_id = new_account(cli, "Other")["account_id"]
    cli("api-keys", "create", "--account", str(account_id))
    revoked = as_json(cli("api-keys", "create", "--account", str(account_id), "--json"))
    cli("api-keys", "revoke", str(revoked["api_key_id"]))
    cli("apps", "create", "--account", str(account_id))
    cli("tokens", "create", "--account", str(account_id), "--name", "ci")
    cli("tokens", "create", "--account", str(account_id), "--name", "monitoring")
    import_one_sim(cli, tmp_path, account_id, 1)
    import_one_sim(cli, tmp_path, account_id, 2)

    row = account_row(cli, account_id)
    other = account_row(cli, other_id)

    # The revoked key is not counted; the other account's figures are its own.
    assert (row["sims"], row["api_keys"], row["apps"], row["permanent_tokens"]) == (2, 2, 1, 2)
    assert (other["sims"], other["api_keys"], other["apps"], other["permanent_tokens"]) == (
        0,
        1,
        0,
        0,
    )


def test_json_timestamps_are_iso_8601_in_utc(cli: Cli) -> None:
    account_id = new_account(cli)["account_id"]
    key = as_json(cli("api-keys", "create", "--account", str(account_id), "--json"))
    cli("api-keys", "revoke", str(key["api_key_id"]))
    cli("tokens", "create", "--account", str(account_id), "--name", "ci")

    keys = as_json(cli("api-keys", "list", "--account", str(account_id), "--json"))
    tokens = as_json(cli("tokens", "list", "--account", str(account_id), "--json"))
    stamps = [
        account_row(cli, account_id)["created_at"],
        *(k["created_at"] for k in keys),
        *(k["revoked_at"] for k in keys if k["revoked_at"]),
        tokens[0]["created_at"],
    ]

    assert len(stamps) == 5
    for stamp in stamps:
        # The "T" form (RFC 3339) that scripts' parsers take, not str(datetime)'s space.
        assert "T" in stamp, stamp
        assert " " not in stamp, stamp
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)


def test_accounts_list_as_a_table_names_the_account(cli: Cli) -> None:
    new_account(cli, "Acme")

    result = cli("accounts", "list")

    assert "Acme" in result.stdout
    assert "active" in result.stdout


def test_tables_show_times_to_the_second_with_the_t(cli: Cli) -> None:
    account_id = str(new_account(cli)["account_id"])
    cli("tokens", "create", "--account", account_id, "--name", "ci")

    for listing in ("api-keys", "tokens"):  # narrow tables: no cell wraps at 80 columns
        shown = cli(listing, "list", "--account", account_id).stdout
        assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", shown), (listing, shown)
        assert not re.search(r":\d\d\.\d", shown), (listing, shown)  # no microseconds


def test_suspend_and_resume_change_the_subscription(cli: Cli) -> None:
    account_id = new_account(cli)["account_id"]
    other_id = new_account(cli, "Other")["account_id"]

    suspended = cli("accounts", "suspend", str(account_id), "--json")
    assert as_json(suspended) == {"account_id": account_id, "subscription": "suspended"}
    assert account_row(cli, account_id)["subscription"] == "suspended"
    assert account_row(cli, other_id)["subscription"] == "active"

    resumed = cli("accounts", "resume", str(account_id))
    assert f"Account {account_id}: subscription active." in resumed.stdout
    assert account_row(cli, account_id)["subscription"] == "active"


@pytest.mark.parametrize(
    "args",
    [
        ["accounts", "suspend", "999"],
        ["accounts", "resume", "999"],
        ["api-keys", "create", "--account", "999"],
        ["api-keys", "list", "--account", "999"],
        ["apps", "create", "--account", "999"],
        ["apps", "list", "--account", "999"],
        ["tokens", "create", "--account", "999", "--name", "ci"],
        ["tokens", "list", "--account", "999"],
    ],
    ids=" ".join,
)
def test_an_unknown_account_is_one_line_error_and_exit_code_1(cli: Cli, args: list[str]) -> None:
    new_account(cli)

    result = cli(*args, exit_code=1)

    assert isinstance(result.exception, SystemExit), result.exception
    [line] = result.stderr.strip().splitlines()
    # The list commands word it "no account with id 999", the others "No account with id 999.".
    assert line.lower().rstrip(".") == "error: no account with id 999"
    assert result.stdout == ""


def test_suspending_an_unknown_account_says_which(cli: Cli) -> None:
    result = cli("accounts", "suspend", "999", exit_code=1)

    assert_one_line_error(result, "No account with id 999.")


def test_a_non_numeric_account_id_is_a_usage_error(cli: Cli) -> None:
    result = cli("accounts", "suspend", "acme", exit_code=2)

    assert "Traceback" not in result.output


# --- API keys -------------------------------------------------------------------------------


def test_api_keys_create_list_and_revoke(cli: Cli) -> None:
    account_id = new_account(cli)["account_id"]

    created = as_json(cli("api-keys", "create", "--account", str(account_id), "--json"))
    assert set(created) == {"api_key_id", "api_key"}
    assert created["api_key"].startswith("m2mk_")

    keys = as_json(cli("api-keys", "list", "--account", str(account_id), "--json"))
    assert [k["api_key_id"] for k in keys][-1] == created["api_key_id"]
    assert len(keys) == 2
    [new] = [k for k in keys if k["api_key_id"] == created["api_key_id"]]
    assert new["account_id"] == account_id
    assert new["revoked_at"] is None
    # Only the first characters are listed, never the key itself.
    assert created["api_key"].startswith(new["hint"])
    assert created["api_key"] not in json.dumps(keys)

    revoked = cli("api-keys", "revoke", str(created["api_key_id"]), "--json")
    assert as_json(revoked) == {"api_key_id": created["api_key_id"], "revoked": True}

    keys = as_json(cli("api-keys", "list", "--account", str(account_id), "--json"))
    [new] = [k for k in keys if k["api_key_id"] == created["api_key_id"]]
    assert new["revoked_at"] is not None
    assert [k["revoked_at"] for k in keys if k["api_key_id"] != created["api_key_id"]] == [None]


def test_api_keys_list_as_a_table_shows_the_hint_only(cli: Cli) -> None:
    created = new_account(cli)

    result = cli("api-keys", "list", "--account", str(created["account_id"]))

    assert created["api_key"][:9] in result.stdout
    assert created["api_key"] not in result.stdout


def test_revoking_a_key_twice_or_an_unknown_key_is_an_error(cli: Cli) -> None:
    account_id = new_account(cli)["account_id"]
    created = as_json(cli("api-keys", "create", "--account", str(account_id), "--json"))
    cli("api-keys", "revoke", str(created["api_key_id"]))

    again = cli("api-keys", "revoke", str(created["api_key_id"]), exit_code=1)
    unknown = cli("api-keys", "revoke", "999", exit_code=1)

    assert_one_line_error(again, f"No live API key with id {created['api_key_id']}.")
    assert_one_line_error(unknown, "No live API key with id 999.")


# --- OAuth2 applications --------------------------------------------------------------------


def test_apps_create_gives_client_credentials_and_list_shows_the_app(cli: Cli) -> None:
    account_id = new_account(cli)["account_id"]

    created = as_json(
        cli("apps", "create", "--account", str(account_id), "--name", "fleet", "--json")
    )

    assert set(created) == {"client_id", "client_secret"}
    assert created["client_secret"].startswith("m2ms_")
    listed = as_json(cli("apps", "list", "--account", str(account_id), "--json"))
    assert [(a["name"], a["client_id"]) for a in listed] == [("fleet", created["client_id"])]
    assert created["client_secret"] not in json.dumps(listed)


# --- permanent tokens -----------------------------------------------------------------------


def test_tokens_create_list_and_delete(cli: Cli) -> None:
    account_id = new_account(cli)["account_id"]

    created = as_json(
        cli("tokens", "create", "--account", str(account_id), "--name", "ci", "--json")
    )
    assert set(created) == {"token_id", "token"}
    assert created["token"].startswith("m2mt_")

    listed = as_json(cli("tokens", "list", "--account", str(account_id), "--json"))
    assert [(t["token_id"], t["name"], t["account_id"]) for t in listed] == [
        (created["token_id"], "ci", account_id)
    ]
    assert created["token"] not in json.dumps(listed)
    assert "ci" in cli("tokens", "list", "--account", str(account_id)).stdout

    deleted = cli("tokens", "delete", str(created["token_id"]), "--json")
    assert as_json(deleted) == {"token_id": created["token_id"], "deleted": True}
    assert as_json(cli("tokens", "list", "--account", str(account_id), "--json")) == []

    again = cli("tokens", "delete", str(created["token_id"]), exit_code=1)
    assert_one_line_error(again, f"No permanent token with id {created['token_id']}.")


def test_tokens_create_requires_a_name(cli: Cli) -> None:
    account_id = new_account(cli)["account_id"]

    result = cli("tokens", "create", "--account", str(account_id), exit_code=2)

    assert "--name" in result.output


# --- names ---------------------------------------------------------------------------------

# Each command that names something, with its account (when it needs one) still to be added.
NAMING = {
    "account": ["accounts", "create"],
    "application": ["apps", "create", "--name"],
    "token": ["tokens", "create", "--name"],
}


def name_command(cli: Cli, what: str, name: str) -> list[str]:
    """The command that names ``what`` ``name``, for a new account where it needs one."""
    command = NAMING[what]
    if what == "account":
        return [*command, name, "--json"]
    account_id = str(new_account(cli)["account_id"])
    return [*command[:2], "--account", account_id, command[2], name, "--json"]


@pytest.mark.parametrize("what", list(NAMING))
@pytest.mark.parametrize(
    ("name", "problem"),
    [
        pytest.param("", "name is empty: give it 1 to 200 characters.", id="empty"),
        pytest.param("  \t ", "name is empty: give it 1 to 200 characters.", id="blank"),
        # PostgreSQL's varchar(200) refused it with a traceback; SQLite stored all 300.
        pytest.param("x" * 300, "name is longer than 200 characters.", id="300-characters"),
        pytest.param("a\x00b", "name contains a control character (U+0000).", id="nul"),
        pytest.param("a\x1b[2Jb", "name contains a control character (U+001B).", id="escape"),
    ],
)
def test_a_bad_name_is_one_line_error_and_nothing_is_created(
    cli: Cli, engine: Engine, what: str, name: str, problem: str
) -> None:
    command = name_command(cli, what, name)
    before = table_counts(engine)

    result = cli(*command, exit_code=1)

    assert_one_line_error(result, f"The {what} {problem}")
    assert result.stdout == ""
    assert table_counts(engine) == before


@pytest.mark.parametrize("what", list(NAMING))
def test_a_name_is_stored_without_surrounding_blanks_up_to_200_characters(
    cli: Cli, what: str
) -> None:
    longest = "é" * 200  # characters, as varchar(200) counts them, not bytes
    for name, stored in ((f"  {longest}\t", longest), (" Fleet 1 ", "Fleet 1")):
        cli(*name_command(cli, what, name))
        assert stored in names_of(cli, what)


def table_counts(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [
            conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (accounts_table, oauth_apps, access_tokens)
        ]


def names_of(cli: Cli, what: str) -> list[str]:
    accounts = as_json(cli("accounts", "list", "--json"))
    if what == "account":
        return [a["name"] for a in accounts]
    listing = "apps" if what == "application" else "tokens"
    return [
        item["name"]
        for account in accounts
        for item in as_json(cli(listing, "list", "--account", str(account["account_id"]), "--json"))
    ]


# --- the credentials work against the API ---------------------------------------------------


def test_every_json_output_names_an_id_the_same_way(cli: Cli) -> None:
    """Scripts rely on one key per kind of id: what ``create --json`` names ``account_id`` is
    ``account_id`` in ``list --json`` too (never a bare ``id``)."""
    account = new_account(cli)
    account_id = str(account["account_id"])
    key = as_json(cli("api-keys", "create", "--account", account_id, "--json"))
    app = as_json(cli("apps", "create", "--account", account_id, "--json"))
    token = as_json(cli("tokens", "create", "--account", account_id, "--name", "ci", "--json"))
    listed = {
        "account_id": as_json(cli("accounts", "list", "--json")),
        "api_key_id": as_json(cli("api-keys", "list", "--account", account_id, "--json")),
        "app_id": as_json(cli("apps", "list", "--account", account_id, "--json")),
        "token_id": as_json(cli("tokens", "list", "--account", account_id, "--json")),
    }
    for id_key, rows in listed.items():
        assert rows, id_key
        assert all(id_key in row for row in rows), (id_key, rows)
        assert not any("id" in row for row in rows), (id_key, rows)
    assert account["account_id"] in [row["account_id"] for row in listed["account_id"]]
    assert key["api_key_id"] in [row["api_key_id"] for row in listed["api_key_id"]]
    assert app["client_id"] in [row["client_id"] for row in listed["app_id"]]
    assert token["token_id"] in [row["token_id"] for row in listed["token_id"]]


def test_a_permanent_token_from_the_cli_reads_a_sim_until_it_is_deleted(
    cli: Cli, client: TestClient, tmp_path: Path
) -> None:
    account = new_account(cli)
    msisdn = import_one_sim(cli, tmp_path, account["account_id"])
    token = as_json(
        cli("tokens", "create", "--account", str(account["account_id"]), "--name", "ci", "--json")
    )

    response = get_sim(client, msisdn, token["token"], account["api_key"])
    assert response.status_code == 200, response.text
    [sim] = response.json()
    assert sim["State"] == "Active"
    assert sim["Device"] == {"Identifier": "234150000000001", "IdentifierType": "IMSI"}

    cli("tokens", "delete", str(token["token_id"]))

    response = get_sim(client, msisdn, token["token"], account["api_key"])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_an_api_key_revoked_with_the_cli_is_refused(
    cli: Cli, client: TestClient, tmp_path: Path
) -> None:
    account_id = new_account(cli)["account_id"]
    msisdn = import_one_sim(cli, tmp_path, account_id)
    token = as_json(cli("tokens", "create", "--account", str(account_id), "--name", "ci", "--json"))
    key = as_json(cli("api-keys", "create", "--account", str(account_id), "--json"))
    assert get_sim(client, msisdn, token["token"], key["api_key"]).status_code == 200

    cli("api-keys", "revoke", str(key["api_key_id"]))

    response = get_sim(client, msisdn, token["token"], key["api_key"])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_api_key"


def test_the_first_api_key_from_accounts_create_can_be_revoked(
    cli: Cli, client: TestClient, tmp_path: Path
) -> None:
    account = new_account(cli)
    msisdn = import_one_sim(cli, tmp_path, account["account_id"])
    token = as_json(
        cli("tokens", "create", "--account", str(account["account_id"]), "--name", "ci", "--json")
    )
    [first] = as_json(cli("api-keys", "list", "--account", str(account["account_id"]), "--json"))

    cli("api-keys", "revoke", str(first["api_key_id"]))

    assert get_sim(client, msisdn, token["token"], account["api_key"]).status_code == 401


def test_an_app_from_the_cli_gets_a_token_that_reads_a_sim(
    cli: Cli, client: TestClient, tmp_path: Path
) -> None:
    account = new_account(cli)
    msisdn = import_one_sim(cli, tmp_path, account["account_id"])
    oauth = as_json(cli("apps", "create", "--account", str(account["account_id"]), "--json"))

    issued = client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": oauth["client_id"],
            "client_secret": oauth["client_secret"],
        },
    )
    assert issued.status_code == 200, issued.text

    response = get_sim(client, msisdn, issued.json()["access_token"], account["api_key"])
    assert response.status_code == 200, response.text


def test_suspend_refuses_the_account_calls_and_resume_lets_them_through(
    cli: Cli, client: TestClient, tmp_path: Path
) -> None:
    account, msisdn, token = account_with_a_sim_and_a_token(cli, tmp_path)
    account_id = str(account["account_id"])

    cli("accounts", "suspend", account_id)
    refused = get_sim(client, msisdn, token["token"], account["api_key"])
    cli("accounts", "resume", account_id)
    allowed = get_sim(client, msisdn, token["token"], account["api_key"])

    assert refused.status_code == 403
    assert refused.json()["error"] == "subscription_suspended"
    assert allowed.status_code == 200


def test_the_operator_can_read_an_accounts_signing_secret(cli: Cli, database_url: str) -> None:
    """A new account signs with version 1 from its first message; its receiver needs that
    secret before anyone rotated it."""
    account_id = new_account(cli)["account_id"]
    result = CliRunner().invoke(
        app,
        ["admin", "accounts", "signing-secret", str(account_id), "--json"],
        env={"M2M_DATABASE_URL": database_url, "M2M_SECRET_KEY": SECRET_KEY},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "account_id": account_id,
        "version": 1,
        "signing_secret": signing_secret(SECRET_KEY, account_id, 1),
    }


def test_an_account_name_already_taken_needs_force(cli: Cli) -> None:
    """Running the same provisioning script twice must not make a second "Acme" silently."""
    first = new_account(cli, "Acme")
    again = cli("accounts", "create", "Acme", exit_code=1)
    assert f"an account named 'Acme' exists already (id {first['account_id']})" in again.stderr
    assert "--force" in again.stderr
    second = as_json(cli("accounts", "create", "Acme", "--force", "--json"))
    assert second["account_id"] != first["account_id"]


def test_an_accounts_own_rate_limit_is_set_shown_applied_and_cleared(
    cli: Cli, client: TestClient, tmp_path: Path
) -> None:
    account, msisdn, token = account_with_a_sim_and_a_token(cli, tmp_path)
    account_id = str(account["account_id"])

    limited = as_json(cli("accounts", "rate-limit", account_id, "--per-second", "0.5", "--json"))
    assert limited == {
        "account_id": account["account_id"],
        "rate_limit_per_second": 0.5,
        "rate_limit_burst": 1,  # twice the rate, at least one
    }
    assert account_row(cli, account["account_id"])["rate_limit_per_second"] == 0.5
    assert "0.5/s, bursts of 1" in cli("accounts", "list").stdout
    served = get_sim(client, msisdn, token["token"], account["api_key"])
    refused = get_sim(client, msisdn, token["token"], account["api_key"])
    assert served.status_code == 200
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert refused.headers["retry-after"] == "2"

    cleared = as_json(cli("accounts", "rate-limit", account_id, "--default", "--json"))
    assert cleared["rate_limit_per_second"] is None
    assert "default rate limit" in cli("accounts", "list").stdout


def test_reactivation_at_the_next_period_is_set_shown_and_turned_off(cli: Cli) -> None:
    account_id = new_account(cli)["account_id"]
    assert account_row(cli, account_id)["usage_reactivate"] is False  # the default
    shown = as_json(
        cli(
            "accounts",
            "usage-settings",
            str(account_id),
            "--policy",
            "deactivate",
            "--reactivate-next-period",
            "--json",
        )
    )
    assert (shown["usage_policy"], shown["usage_reactivate"]) == ("deactivate", True)
    assert account_row(cli, account_id)["usage_reactivate"] is True
    # Shown without changing it; the other settings do not touch it.
    text = cli("accounts", "usage-settings", str(account_id), "--warning-percent", "90").stdout
    assert "SIMs it deactivated reactivated at the next period" in text
    cli("accounts", "usage-settings", str(account_id), "--no-reactivate-next-period")
    assert account_row(cli, account_id)["usage_reactivate"] is False
    text = cli("accounts", "usage-settings", str(account_id)).stdout
    assert "SIMs it deactivated not reactivated at the next period" in text


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["--per-second", "0"], 1, "more than 0"),
        (["--per-second", "5", "--burst", "0"], 1, "burst must be 1"),
        (["--burst", "5"], 2, "either --per-second"),
        ([], 2, "either --per-second"),
        (["--per-second", "5", "--default"], 2, "either --per-second"),
    ],
)
def test_a_rate_limit_that_makes_no_sense_is_refused(
    cli: Cli, args: list[str], exit_code: int, message: str
) -> None:
    account_id = str(new_account(cli)["account_id"])
    result = cli("accounts", "rate-limit", account_id, *args, exit_code=exit_code)
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_a_token_of_one_account_does_not_read_another_account_sim(
    cli: Cli, client: TestClient, tmp_path: Path
) -> None:
    owner = new_account(cli, "Owner")
    stranger = new_account(cli, "Stranger")
    msisdn = import_one_sim(cli, tmp_path, owner["account_id"])
    token = as_json(
        cli("tokens", "create", "--account", str(stranger["account_id"]), "--name", "x", "--json")
    )

    response = get_sim(client, msisdn, token["token"], stranger["api_key"])

    assert response.status_code == 404


# --- known bugs (see the report): strict, so they fail once fixed and the marker must go ------


def test_an_account_name_with_brackets_is_listed_verbatim(cli: Cli) -> None:
    new_account(cli, "a[/red]")
    new_account(cli, "[b]x[/b]")

    result = cli("accounts", "list")

    assert "a[/red]" in result.stdout
    assert "[b]x[/b]" in result.stdout


def test_a_piped_table_keeps_every_cell_whole(cli: Cli) -> None:
    """Output to a pipe or a file is not cut at 80 columns: scripts grep whole names."""
    name = "Acme " + "Logistics " * 15
    new_account(cli, name)
    listed = cli("accounts", "list").stdout
    assert name.strip() in listed


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_db_upgrade_never_prints_the_database_password(database_url: str) -> None:
    # The local server trusts loopback, so it ignores the password; the output must not show it.
    with_password = database_url.replace("postgres@", "postgres:pw-s3cret-value@", 1)
    assert "pw-s3cret-value" in with_password
    result = CliRunner().invoke(app, ["db", "upgrade"], env={"M2M_DATABASE_URL": with_password})
    assert result.exit_code == 0, result.output
    assert "is up to date" in result.output
    assert "pw-s3cret-value" not in result.output


def db_upgrade(url: str) -> str:
    result = CliRunner().invoke(app, ["db", "upgrade"], env={"M2M_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split())


def test_db_upgrade_says_whether_and_from_which_revision_it_migrated(tmp_path: Path) -> None:
    new, old = f"sqlite:///{tmp_path / 'new.db'}", f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(old)
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    upgrade(engine, "0003")  # as an older release left it
    engine.dispose()

    assert db_upgrade(new) == f"Created the schema of the database at {new} (revision {head})."
    assert db_upgrade(new) == f"Database at {new} is up to date (revision {head})."
    assert db_upgrade(old) == f"Migrated the database at {old} from revision 0003 to {head}."
    assert db_upgrade(old) == f"Database at {old} is up to date (revision {head})."


# --- a database that cannot be used, or is not there ----------------------------------------


def run_m2m(*args: str, **env: str) -> Result:
    """``m2m ARGS`` with only the M2M_* variables given (the test's own are left out)."""
    cleared: dict[str, str | None] = {"M2M_DATABASE_URL": None, "M2M_DATA_DIR": None}
    return CliRunner().invoke(app, list(args), env={**cleared, **env})


def assert_one_red_line(result: Result, *parts: str) -> str:
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    for part in parts:
        assert part in line
    return line


def a_file_in_the_way(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "taken").write_text("not a folder")
    return {"M2M_DATA_DIR": str(tmp_path / "taken" / "data")}


def a_folder_in_the_way(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "data" / "m2m.db").mkdir(parents=True)
    return {"M2M_DATA_DIR": str(tmp_path / "data")}


def a_newer_schema(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with write_transaction(engine) as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    return {"M2M_DATABASE_URL": url}


UNUSABLE_DATABASES: dict[str, tuple[Callable[[Path], dict[str, str]], list[str]]] = {
    "not a URL": (
        lambda _: {"M2M_DATABASE_URL": "foo"},
        ["M2M_DATABASE_URL: not a database URL", "sqlite:///", "postgresql://"],
    ),
    "MySQL": (
        lambda _: {"M2M_DATABASE_URL": "mysql://app:pw-s3cret@db.example/m2m"},
        ["mysql is not supported: m2m runs on SQLite or PostgreSQL"],
    ),
    "an async driver": (
        lambda _: {"M2M_DATABASE_URL": "postgresql+asyncpg://app@db.example/m2m"},
        ["the driver 'asyncpg' is not supported; write postgresql:// without one"],
    ),
    "no server": (
        lambda _: {"M2M_DATABASE_URL": "postgresql://postgres:pw-s3cret@127.0.0.1:1/m2m"},
        [
            "cannot use the database at postgresql+psycopg://postgres:***@127.0.0.1:1/m2m",
            "Connection refused",
            "Check M2M_DATABASE_URL",
        ],
    ),
    "a folder in the way of the file": (
        a_folder_in_the_way,
        ["cannot use the database at sqlite:///", "unable to open database file", "M2M_DATA_DIR"],
    ),
    "a schema from a newer release": (
        a_newer_schema,
        ["cannot migrate the database", "'9999'", "newer version of m2m"],
    ),
}


@pytest.mark.parametrize(
    "command", [["db", "upgrade"], ["admin", "accounts", "list"]], ids=" ".join
)
@pytest.mark.parametrize("problem", list(UNUSABLE_DATABASES))
def test_a_database_that_cannot_be_used_is_one_line_saying_what_to_change(
    tmp_path: Path, command: list[str], problem: str
) -> None:
    make_env, parts = UNUSABLE_DATABASES[problem]

    result = run_m2m(*command, **make_env(tmp_path))

    line = assert_one_red_line(result, *parts)
    assert "pw-s3cret" not in line
    assert result.stdout == ""


def test_db_upgrade_says_when_it_cannot_make_the_database_folder(tmp_path: Path) -> None:
    result = run_m2m("db", "upgrade", **a_file_in_the_way(tmp_path))

    assert_one_red_line(
        result,
        f"cannot create the folder {tmp_path / 'taken' / 'data'} for the SQLite database",
        "a part of its path is a file",
        "Set M2M_DATA_DIR to a place this user can write",
    )


def test_admin_commands_refuse_a_database_file_that_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from another folder, the default ./data/m2m.db is not the server's database: an empty
    table would say "no accounts" of a database nobody uses."""
    monkeypatch.chdir(tmp_path)

    result = run_m2m("admin", "accounts", "list")

    assert_one_red_line(
        result,
        f"there is no database at {tmp_path / 'data' / 'm2m.db'}",
        "M2M_DATABASE_URL (or M2M_DATA_DIR)",
        "`m2m db upgrade`",
    )
    assert list(tmp_path.iterdir()) == []  # nothing made, not even the folder


def test_db_upgrade_creates_the_database_the_admin_commands_then_use(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'm2m.db'}"
    refused = run_m2m("admin", "accounts", "create", "Acme", M2M_DATABASE_URL=url)
    assert_one_red_line(refused, f"there is no database at {tmp_path / 'new' / 'm2m.db'}")
    assert "M2M_DATA_DIR" not in refused.stderr  # the URL chose the file: the folder would not

    assert run_m2m("db", "upgrade", M2M_DATABASE_URL=url).exit_code == 0
    created = run_m2m("admin", "accounts", "create", "Acme", "--json", M2M_DATABASE_URL=url)

    assert created.exit_code == 0, created.output
    assert as_json(created)["account_id"] == 1


def _request_with_message(
    engine: Engine, account_id: int, finished_days_ago: int, message_status: str
) -> str:
    """A finished one-device request whose callback message is ``message_status``."""
    now = datetime.now(UTC)
    tracking = str(uuid.uuid4())
    with write_transaction(engine) as conn:
        request_id = request_intake.create_request(
            conn,
            tracking_number=tracking,
            account_id=account_id,
            operation="deactivation",
            callback_token="t",
            items=[{"identifier": "32499999999", "identifier_type": "MSISDN", "sim_id": None}],
            now=now,
        )
        item_id = conn.execute(
            select(request_items.c.id).where(request_items.c.request_id == request_id)
        ).scalar_one()
        finished = now - timedelta(days=finished_days_ago)
        conn.execute(
            update(request_items).where(request_items.c.id == item_id).values(status="done")
        )
        conn.execute(
            update(lifecycle_requests)
            .where(lifecycle_requests.c.id == request_id)
            .values(finished_at=finished)
        )
        delivery_id = str(uuid.uuid4())
        conn.execute(
            insert(callback_deliveries).values(
                id=delivery_id,
                account_id=account_id,
                item_id=item_id,
                payload={},
                status=message_status,
                next_attempt_at=finished,
                created_at=finished,
            )
        )
        conn.execute(
            insert(callback_attempts).values(
                delivery_id=delivery_id, attempted_at=finished, url="https://x.example/"
            )
        )
    return tracking


def test_purge_deletes_old_settled_requests_only(cli: Cli, engine: Engine) -> None:
    account_id = new_account(cli)["account_id"]
    old_delivered = _request_with_message(engine, account_id, 40, "delivered")
    old_failed = _request_with_message(engine, account_id, 40, "failed")
    old_pending = _request_with_message(engine, account_id, 40, "pending")  # still retrying
    recent = _request_with_message(engine, account_id, 2, "delivered")

    report = as_json(cli("requests", "purge", "--older-than", "30", "--json"))

    assert report["deleted_requests"] == 2
    with engine.connect() as conn:
        left = set(conn.execute(select(lifecycle_requests.c.tracking_number)).scalars())
        assert left == {old_pending, recent}
        assert not {old_delivered, old_failed} & left
        # Their items, messages and attempts went with them.
        assert conn.execute(select(func.count()).select_from(request_items)).scalar_one() == 2
        assert conn.execute(select(func.count()).select_from(callback_deliveries)).scalar_one() == 2
        assert conn.execute(select(func.count()).select_from(callback_attempts)).scalar_one() == 2


def test_purge_needs_a_positive_age(cli: Cli) -> None:
    result = cli("requests", "purge", "--older-than", "0", exit_code=2)
    assert "older-than" in result.output


# --- console users --------------------------------------------------------------------------


def create_user(account_id: int, email: str, *options: str) -> list[str]:
    return ["users", "create", "--account", str(account_id), "--email", email, *options]


def test_users_create_generates_a_password_that_logs_in_to_the_console(
    cli: Cli, settings: Settings, engine: Engine, clock: ManualClock
) -> None:
    account = new_account(cli)
    created = as_json(cli(*create_user(account["account_id"], "Ops@Acme.example", "--json")))
    assert created["email"] == "ops@acme.example"
    assert len(created["password"]) >= 20
    with console_client(settings, engine, clock) as console:
        log_in(console, "ops@acme.example", created["password"])
        assert "Acme" in console.get("/console/").text


def test_users_create_prompts_for_the_password_twice(cli: Cli, database_url: str) -> None:
    account = new_account(cli)
    result = CliRunner().invoke(
        app,
        ["admin", *create_user(account["account_id"], "a@b.example")],
        env={"M2M_DATABASE_URL": database_url},
        input="long-enough-password\nlong-enough-password\n",
    )
    assert result.exit_code == 0, result.output
    assert "long-enough-password" not in result.stdout.split("Repeat")[-1]
    assert "Console user a@b.example created" in result.stdout


@pytest.mark.parametrize(
    ("email", "account_id", "message"),
    [
        ("not-an-email", None, "Enter an email address such as name@example.com."),
        ("x@y.example", 999, "No account with id 999."),
    ],
)
def test_users_create_refuses_bad_input_in_one_line(
    cli: Cli, email: str, account_id: int | None, message: str
) -> None:
    account = new_account(cli)
    command = create_user(account_id or account["account_id"], email, "--json")
    assert_one_line_error(cli(*command, exit_code=1), message)


def test_users_create_refuses_an_email_in_use(cli: Cli) -> None:
    account = new_account(cli)
    command = create_user(account["account_id"], "a@b.example", "--json")
    cli(*command)
    assert_one_line_error(
        cli(*command, exit_code=1), "A console user with email a@b.example exists already."
    )


# --- the audit trail --------------------------------------------------------------------------


def test_every_admin_change_is_recorded_once_as_the_admin_cli_without_a_secret(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    watch = AuditWatch(engine)
    secrets = []
    account = new_account(cli, "Audited")
    account_id = account["account_id"]
    secrets.append(account["api_key"])
    created = watch.one("account.created")
    assert created["account_id"] == account_id
    assert created["changes"] == {
        "name": {"before": None, "after": "Audited"},
        "api_key": {"before": None, "after": account["api_key"][:9]},
    }
    flag = ["--account", str(account_id)]

    key = as_json(cli("api-keys", "create", *flag, "--json"))
    secrets.append(key["api_key"])
    assert watch.one("api_key.created")["subject"] == key["api_key"][:9]
    cli("api-keys", "revoke", str(key["api_key_id"]))
    assert watch.one("api_key.revoked")["account_id"] == account_id

    app_created = as_json(cli("apps", "create", *flag, "--name", "Billing", "--json"))
    secrets.append(app_created["client_secret"])
    assert watch.one("application.created")["subject"] == app_created["client_id"]

    token = as_json(cli("tokens", "create", *flag, "--name", "ci", "--json"))
    secrets.append(token["token"])
    assert watch.one("token.created")["subject"] == "ci"
    cli("tokens", "delete", str(token["token_id"]))
    assert watch.one("token.deleted")["subject"] == "ci"

    cli("accounts", "suspend", str(account_id))
    assert watch.one("account.suspended")["changes"] == {
        "subscription": {"before": "active", "after": "suspended"}
    }
    cli("accounts", "resume", str(account_id))
    assert watch.one("account.resumed")["changes"] == {
        "subscription": {"before": "suspended", "after": "active"}
    }
    cli("accounts", "rate-limit", str(account_id), "--per-second", "5")
    assert watch.one("account.rate_limit_set")["changes"] == {
        "rate_limit_per_second": {"before": None, "after": 5.0},
        "rate_limit_burst": {"before": None, "after": 10},
    }

    user = as_json(cli(*create_user(account_id, "Ops@Acme.example", "--json")))
    secrets.append(user["password"])
    assert watch.one("console_user.created")["subject"] == "ops@acme.example"

    import_one_sim(cli, tmp_path, account_id, n=7)
    imported = watch.one("sim.imported")
    assert (imported["subject_kind"], imported["subject"]) == ("import", "sim-7.csv")
    assert imported["changes"] == {"imported": {"before": None, "after": 1}}

    entries = audit_rows(engine)
    assert {(e["actor_kind"], e["actor"], e["account_id"]) for e in entries} == {
        ("admin", "admin CLI", account_id)
    }
    text = stored_text(engine)
    for secret in secrets:
        assert secret not in text


def test_a_refused_import_or_a_failed_command_records_nothing(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    account_id = new_account(cli)["account_id"]
    watch = AuditWatch(engine)
    bad = tmp_path / "bad.csv"
    bad.write_text("iccid,imsi,msisdn,state\n1,2,3,Active\n", encoding="utf-8")
    cli("sims", "import", str(bad), "--account", str(account_id), "--json", exit_code=1)
    cli("api-keys", "revoke", "999999", exit_code=1)
    cli("accounts", "suspend", "999999", exit_code=1)
    assert watch.new() == []


def _old_event(engine: Engine, account_id: int, days: int) -> None:
    with write_transaction(engine) as conn:
        audit_store.record(
            conn,
            account_id=account_id,
            actor=ADMIN_CLI,
            action=f"test.{days}",
            subject_kind="test",
            subject=str(days),
            changes={},
            now=datetime.now(UTC) - timedelta(days=days),
        )


def _idempotency_key(engine: Engine, account_id: int, key: str, hours: float) -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            insert(idempotency_keys).values(
                account_id=account_id,
                key=key,
                request_digest=b"\0" * 32,
                created_at=datetime.now(UTC) - timedelta(hours=hours),
            )
        )


def test_purge_deletes_audit_events_past_retention_and_day_old_idempotency_keys(
    cli: Cli, engine: Engine, database_url: str
) -> None:
    account_id = new_account(cli)["account_id"]  # its account.created entry is new: kept
    for days in (400, 366, 364, 10):
        _old_event(engine, account_id, days)
    _idempotency_key(engine, account_id, "old", 25)
    _idempotency_key(engine, account_id, "fresh", 23)

    report = as_json(cli("purge", "--json"))

    assert report["deleted_audit_events"] == 2
    assert report["deleted_idempotency_keys"] == 1
    assert "deleted_requests" not in report
    kept = [row["action"] for row in audit_rows(engine)]
    assert kept == ["account.created", "test.364", "test.10"]
    with engine.connect() as conn:
        assert list(conn.execute(select(idempotency_keys.c.key)).scalars()) == ["fresh"]

    # The retention is a setting; the requests' purge purges the same, and says so.
    runner = CliRunner()
    env = {"M2M_DATABASE_URL": database_url, "M2M_AUDIT_RETENTION_DAYS": "30"}
    result = runner.invoke(app, ["admin", "requests", "purge", "--older-than", "30"], env=env)
    assert result.exit_code == 0, result.output
    assert "Deleted 0 requests" in result.output
    assert "Deleted 1 audit event recorded before" in result.output
    assert [row["action"] for row in audit_rows(engine)] == ["account.created", "test.10"]


def test_purge_deletes_hourly_usage_past_its_retention_only_when_set(
    engine: Engine, database_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin, "USAGE_PURGE_SIMS", 2)  # several ranges of SIMs
    now = datetime.now(UTC)
    msisdns = add_active_sims(engine, 5, now, account_id=tenant.account_id)
    with engine.connect() as conn:
        iccids = list(
            conn.execute(select(sim_cards.c.iccid).where(sim_cards.c.msisdn.in_(msisdns))).scalars()
        )
    records = [
        UsageRecord(iccid, None, now - timedelta(days=age), None, Totals(sms_out=1))
        for iccid in iccids
        for age in (40, 2)
    ]
    with write_transaction(engine) as conn:
        usage_ingest.ingest(conn, "hours", records, now)

    def hours() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(usage_hourly)).scalar_one())

    runner = CliRunner()
    kept = runner.invoke(app, ["admin", "purge", "--json"], env={"M2M_DATABASE_URL": database_url})
    assert kept.exit_code == 0, kept.output
    assert "deleted_usage_hours" not in json.loads(kept.output)  # not set: hours are kept
    assert hours() == 10

    env = {"M2M_DATABASE_URL": database_url, "M2M_USAGE_HOURLY_RETENTION_DAYS": "30"}
    result = runner.invoke(app, ["admin", "purge"], env=env)
    assert result.exit_code == 0, result.output
    assert "Deleted 5 hours of SIMs' usage before" in result.output
    assert hours() == 5
    with engine.connect() as conn:
        oldest = conn.execute(select(func.min(usage_hourly.c.hour))).scalar_one()
        days = conn.execute(select(func.count()).select_from(usage_daily)).scalar_one()
    assert oldest > now - timedelta(days=30)
    assert days == 10  # days (and months) are kept


def test_usage_rebuild_account_days_sums_them_again_from_the_sims_days(
    engine: Engine, database_url: str, tenant: Tenant, other_tenant: Tenant
) -> None:
    """After an upgrade during which the previous release counted usage without the accounts'
    day totals, one command puts them right (for one account, or for every one)."""
    now = datetime.now(UTC)
    mine = add_active_sims(engine, 2, now, account_id=tenant.account_id)
    theirs = add_active_sims(engine, 1, now, account_id=other_tenant.account_id, first=2)
    with engine.connect() as conn:
        iccids = dict(
            conn.execute(
                select(sim_cards.c.msisdn, sim_cards.c.iccid).where(
                    sim_cards.c.msisdn.in_(mine + theirs)
                )
            ).all()
        )
    records = [
        UsageRecord(iccids[msisdn], None, now - timedelta(minutes=5), None, Totals(sms_out=n + 1))
        for n, msisdn in enumerate(mine + theirs)
    ]
    with write_transaction(engine) as conn:
        usage_ingest.ingest(conn, "before the upgrade", records, now)
        conn.execute(usage_account_daily.delete())  # as the previous release left them

    def sms_of(account_id: int) -> int | None:
        with engine.connect() as conn:
            return conn.execute(
                select(func.sum(usage_account_daily.c.sms_out)).where(
                    usage_account_daily.c.account_id == account_id
                )
            ).scalar()

    runner = CliRunner()
    env = {"M2M_DATABASE_URL": database_url}
    one = runner.invoke(
        app,
        ["admin", "usage", "rebuild-account-days", "--account", str(tenant.account_id), "--json"],
        env=env,
    )
    assert one.exit_code == 0, one.output
    assert json.loads(one.output) == {"account_days": 1}
    assert (sms_of(tenant.account_id), sms_of(other_tenant.account_id)) == (3, None)
    every = runner.invoke(app, ["admin", "usage", "rebuild-account-days"], env=env)
    assert every.exit_code == 0, every.output
    assert "2 account days summed" in every.output
    assert (sms_of(tenant.account_id), sms_of(other_tenant.account_id)) == (3, 3)
