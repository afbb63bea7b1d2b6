"""The SIM CSV import: ``m2m admin sims import`` and ``m2m.simimport`` underneath it."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from sqlalchemy import Engine, select
from typer.testing import CliRunner, Result

from m2m import accounts
from m2m.audit import ADMIN_CLI
from m2m.cli import admin
from m2m.cli.main import app
from m2m.clock import ManualClock
from m2m.identifiers import SimState, luhn_check_digit
from m2m.profile import SimProfile, custom_fields_document
from m2m.simimport import (
    BATCH,
    SHORTHANDS,
    ImportFileError,
    ImportReport,
    RowError,
    import_csv,
    parse_row,
)
from m2m.storage.sims import StoredSim, count_sims
from m2m.storage.tables import sim_cards

HEADER = ["iccid", "imsi", "msisdn", "state"]
# Stored whole, as the list answers it: all seven custom fields, "" where unset.
NO_CUSTOM_FIELDS = custom_fields_document({})
EMPTY_PROFILE = SimProfile(CustomFields=NO_CUSTOM_FIELDS).model_dump()
STATES_TEXT = "Ready, Active, Deactivated, Terminated"
Cli = Callable[..., Result]


def iccid(n: int, length: int = 19) -> str:
    payload = f"8944{n:0{length - 5}d}"
    return payload + str(luhn_check_digit(payload))


def imsi(n: int) -> str:
    return f"23415{n:010d}"


def msisdn(n: int) -> str:
    return f"447{n:09d}"


def sim(n: int, state: str = "Active", **extra: str) -> dict[str, str]:
    """A valid record for SIM number ``n`` (identifiers unique per ``n``)."""
    return {"iccid": iccid(n), "imsi": imsi(n), "msisdn": msisdn(n), "state": state, **extra}


def csv_text(rows: Sequence[dict[str, str]], header: Sequence[str] | None = None) -> str:
    columns = list(header or dict.fromkeys(key for row in rows for key in row))
    lines = [",".join(columns)]
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column, "")
            if any(c in value for c in ',"\n'):
                value = '"' + value.replace('"', '""') + '"'
            cells.append(value)
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    counter = itertools.count()

    def write_file(content: str | Sequence[dict[str, str]], **kwargs: Any) -> Path:
        path = tmp_path / f"import-{next(counter)}.csv"
        text = content if isinstance(content, str) else csv_text(content, **kwargs)
        path.write_text(text, encoding="utf-8")
        return path

    return write_file


@pytest.fixture
def account_id(engine: Engine, clock: ManualClock) -> int:
    return accounts.create_account(engine, clock, "Importer", actor=ADMIN_CLI).id


@pytest.fixture
def other_account_id(engine: Engine, clock: ManualClock) -> int:
    return accounts.create_account(engine, clock, "Someone else", actor=ADMIN_CLI).id


@pytest.fixture
def run_import(engine: Engine, account_id: int, clock: ManualClock) -> Callable[..., ImportReport]:
    def run(path: Path, *, skip_invalid: bool = False, account: int | None = None) -> ImportReport:
        return import_csv(
            engine,
            path,
            account_id if account is None else account,
            clock.now(),
            actor=ADMIN_CLI,
            skip_invalid=skip_invalid,
        )

    return run


@pytest.fixture
def cli(database_url: str) -> Cli:
    runner = CliRunner()

    def invoke(*args: str, exit_code: int = 0) -> Result:
        result = runner.invoke(app, ["admin", *args], env={"M2M_DATABASE_URL": database_url})
        assert result.exit_code == exit_code, (result.exit_code, result.output, result.exception)
        assert "Traceback" not in result.output
        return result

    return invoke


def stored(engine: Engine, account_id: int, number: str) -> StoredSim | None:
    """What the import stored for this MSISDN in this account."""
    columns = [sim_cards.c[name] for name in ("iccid", "imsi", "msisdn", "state", "cost_center")]
    query = select(*columns, sim_cards.c.profile).where(
        sim_cards.c.msisdn == number, sim_cards.c.account_id == account_id
    )
    with engine.connect() as conn:
        row = conn.execute(query).one_or_none()
    return StoredSim(*row) if row else None


def count(engine: Engine, account_id: int | None = None) -> int:
    with engine.connect() as conn:
        return count_sims(conn, account_id)


# --- a valid file ---------------------------------------------------------------------------


def test_a_valid_file_imports_every_row(
    cli: Cli, write: Callable[..., Path], engine: Engine, account_id: int
) -> None:
    states = ["Ready", "Active", "Deactivated", "Terminated", "Active"]
    rows = [sim(n, state, cost_center=f"CC-{n}") for n, state in enumerate(states, start=1)]
    path = write(rows)

    result = cli("sims", "import", str(path), "--account", str(account_id), "--json")

    assert json.loads(result.stdout) == {"rows": 5, "imported": 5, "errors": []}
    assert count(engine, account_id) == 5
    for n, state in enumerate(states, start=1):
        assert stored(engine, account_id, msisdn(n)) == StoredSim(
            iccid=iccid(n),
            imsi=imsi(n),
            msisdn=msisdn(n),
            state=state,
            cost_center=f"CC-{n}",
            profile=EMPTY_PROFILE,
        )


def test_the_cli_summary_without_json(
    cli: Cli, write: Callable[..., Path], engine: Engine, account_id: int
) -> None:
    path = write([sim(1), sim(2)])

    result = cli("sims", "import", str(path), "--account", str(account_id))

    assert "2 rows read, 2 imported, 0 problems." in result.stdout
    assert count(engine, account_id) == 2


def test_the_sims_belong_to_the_account_given(
    run_import: Callable[..., ImportReport],
    write: Callable[..., Path],
    engine: Engine,
    account_id: int,
    other_account_id: int,
) -> None:
    report = run_import(write([sim(1)]), account=other_account_id)

    assert report.imported == 1
    assert stored(engine, account_id, msisdn(1)) is None
    assert stored(engine, other_account_id, msisdn(1)) is not None
    assert count(engine, account_id) == 0


def test_a_leading_plus_and_blanks_around_identifiers_are_dropped(
    run_import: Callable[..., ImportReport],
    write: Callable[..., Path],
    engine: Engine,
    account_id: int,
) -> None:
    row = sim(1, msisdn=f" +{msisdn(1)} ", iccid=f" {iccid(1)}", imsi=f"{imsi(1)} ")

    assert run_import(write([row])).imported == 1

    found = stored(engine, account_id, msisdn(1))
    assert found is not None
    assert (found.iccid, found.imsi, found.msisdn) == (iccid(1), imsi(1), msisdn(1))


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("active", "Active"),
        ("READY", "Ready"),
        (" deactivated ", "Deactivated"),
        ("TeRmInAtEd", "Terminated"),
    ],
)
def test_states_are_accepted_in_any_case(
    run_import: Callable[..., ImportReport],
    write: Callable[..., Path],
    engine: Engine,
    account_id: int,
    written: str,
    kept: str,
) -> None:
    report = run_import(write([sim(1, written)]))

    assert (report.imported, report.errors) == (1, [])
    found = stored(engine, account_id, msisdn(1))
    assert found is not None
    assert found.state == kept


def test_header_names_are_case_insensitive_in_any_order_with_blanks(
    run_import: Callable[..., ImportReport], write: Callable[..., Path], engine: Engine
) -> None:
    row = sim(1, cost_center="North")
    text = (
        " State ,MSISDN,Cost_Center, ICCID,Imsi\n"
        f"{row['state']},{row['msisdn']},North,{row['iccid']},{row['imsi']}\n"
    )

    report = run_import(write(text))

    assert (report.imported, report.errors) == (1, [])


def test_a_byte_order_mark_and_blank_lines_are_ignored(
    run_import: Callable[..., ImportReport], write: Callable[..., Path]
) -> None:
    text = "\ufeff" + csv_text([sim(1)]) + "\n" + csv_text([sim(2)]).split("\n", 1)[1] + "\n"

    report = run_import(write(text))

    assert (report.rows, report.imported, report.errors) == (2, 2, [])


def test_a_file_with_only_a_header_imports_nothing_without_error(
    run_import: Callable[..., ImportReport], write: Callable[..., Path], engine: Engine
) -> None:
    report = run_import(write(",".join(HEADER) + "\n"))

    assert (report.rows, report.imported, report.errors) == (0, 0, [])
    assert count(engine) == 0


def test_progress_reports_every_character_read(
    engine: Engine, account_id: int, clock: ManualClock, write: Callable[..., Path]
) -> None:
    text = csv_text([sim(n, cost_center="Zürich") for n in range(50)])
    seen: list[int] = []

    import_csv(engine, write(text), account_id, clock.now(), actor=ADMIN_CLI, progress=seen.append)

    assert sum(seen) == len(text)


def test_the_steps_after_the_reading_are_named_as_they_start(
    engine: Engine, account_id: int, clock: ManualClock, write: Callable[..., Path]
) -> None:
    """They take seconds at a million rows, with no characters left to count."""
    events: list[object] = []

    import_csv(
        engine,
        write([sim(n) for n in range(20)]),
        account_id,
        clock.now(),
        actor=ADMIN_CLI,
        progress=lambda _n: events.append("read"),
        phase=events.append,
    )

    assert events[-2:] == ["checking for duplicates", "inserting"]
    assert set(events[:-2]) == {"read"}
    assert count(engine) == 20


def test_nothing_is_said_to_be_inserted_from_a_file_with_errors(
    engine: Engine, account_id: int, clock: ManualClock, write: Callable[..., Path]
) -> None:
    phases: list[str] = []
    path = write([sim(1), sim(1)])  # a duplicate

    import_csv(engine, path, account_id, clock.now(), actor=ADMIN_CLI, phase=phases.append)

    assert phases == ["checking for duplicates"]


def test_the_cli_shows_each_step_of_a_large_import(
    cli: Cli,
    write: Callable[..., Path],
    engine: Engine,
    account_id: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = 20_000  # over 1 MiB: smaller files are done before a display would help
    path = write([sim(n) for n in range(rows)])
    assert path.stat().st_size > 1 << 20
    screen = Console(file=io.StringIO(), force_terminal=True, width=120, highlight=False)
    monkeypatch.setattr(admin, "console", screen)

    cli("sims", "import", str(path), "--account", str(account_id))

    shown = screen.file.getvalue()
    assert "Validating" in shown
    assert "Checking for duplicates…" in shown
    assert "Inserting…" in shown
    assert f"{rows} rows read, {rows} imported, 0 problems." in shown
    assert count(engine) == rows


def test_the_import_time_is_recorded(
    engine: Engine, account_id: int, write: Callable[..., Path]
) -> None:
    when = datetime.fromisoformat("2030-05-06T07:08:09+00:00")

    import_csv(engine, write([sim(1)]), account_id, when, actor=ADMIN_CLI)

    with engine.connect() as conn:
        created, updated = conn.execute(
            select(sim_cards.c.created_at, sim_cards.c.updated_at)
        ).one()
    assert created == updated == when


# --- profiles -------------------------------------------------------------------------------


def test_profile_shorthands_fill_the_stored_profile(
    run_import: Callable[..., ImportReport],
    write: Callable[..., Path],
    engine: Engine,
    account_id: int,
) -> None:
    row = sim(
        1,
        apn="internet.m2m",
        static_ip="10.1.2.3",
        data_plan="PLAN-1GB",
        data_daily_threshold="100",
        data_monthly_threshold="3000",
        sms_plan="SMS-50",
        voice_plan="VOICE-0",
        custom_field_1="asset 42",
        custom_field_7="rack B",
    )

    assert run_import(write([row, sim(2)])).imported == 2

    found = stored(engine, account_id, msisdn(1))
    assert found is not None
    profile = found.profile
    assert profile["AccessPoints"] == [
        {
            "Code": "internet.m2m",
            "Properties": {"StaticIP": "10.1.2.3", "UserName": "", "CustomName": ""},
        }
    ]
    assert profile["DataService"]["Plan"]["Code"] == "PLAN-1GB"
    assert profile["DataService"]["DailyTreshold"] == 100
    assert profile["DataService"]["MonthlyTreshold"] == 3000
    assert profile["SMSService"]["PlanCode"] == "SMS-50"
    assert profile["VoiceService"]["PlanCode"] == "VOICE-0"
    assert profile["CustomFields"] == {
        **NO_CUSTOM_FIELDS,
        "Custom Field 1": "asset 42",
        "Custom Field 7": "rack B",
    }
    # The whole document stays a valid profile, and the row without shorthands stays empty.
    SimProfile.model_validate(profile)
    other = stored(engine, account_id, msisdn(2))
    assert other is not None
    assert other.profile == EMPTY_PROFILE


def test_a_json_profile_column_is_stored_and_shorthands_apply_on_top(
    run_import: Callable[..., ImportReport],
    write: Callable[..., Path],
    engine: Engine,
    account_id: int,
) -> None:
    document = {
        "AccessPoints": [{"Code": "iot.apn", "Properties": {"UserName": "u1"}}],
        "CustomFields": {"Custom Field 2": "from json"},
        "DataService": {
            "Plan": {"Code": "JSON-PLAN", "Description": "from json"},
            "Features": [{"Code": "roaming", "Enabled": True}],
        },
        "SMSService": {"PlanCode": "SMS-JSON", "FeatureCodes": ["mo", "mt"]},
    }
    plain = sim(1, profile=json.dumps(document))
    mixed = sim(2, profile=json.dumps(document), data_plan="CSV-PLAN", custom_field_3="from csv")

    assert run_import(write([plain, mixed])).imported == 2

    first = stored(engine, account_id, msisdn(1))
    assert first is not None
    whole = {**document, "CustomFields": custom_fields_document(document["CustomFields"])}
    assert first.profile == SimProfile.model_validate(whole).model_dump()
    assert list(first.profile["CustomFields"]) == list(NO_CUSTOM_FIELDS)  # in order
    assert first.profile["AccessPoints"][0]["Properties"]["UserName"] == "u1"
    second = stored(engine, account_id, msisdn(2))
    assert second is not None
    assert second.profile["DataService"]["Plan"] == {
        "Code": "CSV-PLAN",
        "Description": "from json",
        "ServiceType": "",
    }
    assert second.profile["DataService"]["Features"] == [{"Code": "roaming", "Enabled": True}]
    assert second.profile["CustomFields"] == {
        **NO_CUSTOM_FIELDS,
        "Custom Field 2": "from json",
        "Custom Field 3": "from csv",
    }
    assert second.profile["SMSService"]["FeatureCodes"] == ["mo", "mt"]


def test_an_apn_shorthand_replaces_the_access_points_of_the_json_profile(
    run_import: Callable[..., ImportReport],
    write: Callable[..., Path],
    engine: Engine,
    account_id: int,
) -> None:
    document = {"AccessPoints": [{"Code": "a"}, {"Code": "b"}]}

    run_import(write([sim(1, profile=json.dumps(document), apn="c")]))

    found = stored(engine, account_id, msisdn(1))
    assert found is not None
    assert [ap["Code"] for ap in found.profile["AccessPoints"]] == ["c"]


def test_a_custom_field_outside_the_seven_documented_is_refused_by_name(
    run_import: Callable[..., ImportReport], write: Callable[..., Path], engine: Engine
) -> None:
    document = {"CustomFields": {"Custom Field 1": "ok", "Colour": "red"}}

    report = run_import(write([sim(1), sim(2, profile=json.dumps(document))]))

    [error] = report.errors
    assert error.line == 3
    assert "'Colour'" in error.message
    for n in range(1, 8):
        assert f"'Custom Field {n}'" in error.message  # what is allowed instead
    assert count(engine) == 0


# --- one problem per rule, with its line ----------------------------------------------------

LONG = "x" * 201


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param({"iccid": iccid(3)[:-1]}, "ICCID must be 19 or 20 digits", id="iccid-18"),
        pytest.param({"iccid": iccid(3, 20) + "0"}, "ICCID must be 19 or 20 digits", id="iccid-21"),
        pytest.param({"iccid": ""}, "ICCID must be 19 or 20 digits", id="iccid-empty"),
        pytest.param(
            {"iccid": "894400000000000000A"}, "ICCID must be 19 or 20 digits", id="iccid-letter"
        ),
        pytest.param(
            {"iccid": iccid(3)[:-1] + str((int(iccid(3)[-1]) + 1) % 10)},
            "ICCID check digit (Luhn) is wrong",
            id="iccid-luhn-19",
        ),
        pytest.param(
            {"iccid": iccid(3, 20)[:-1] + str((int(iccid(3, 20)[-1]) + 5) % 10)},
            "ICCID check digit (Luhn) is wrong",
            id="iccid-luhn-20",
        ),
        pytest.param({"imsi": imsi(3)[:-1]}, "IMSI must be exactly 15 digits", id="imsi-14"),
        pytest.param({"imsi": imsi(3) + "0"}, "IMSI must be exactly 15 digits", id="imsi-16"),
        pytest.param({"imsi": "23415000000000X"}, "IMSI must be exactly 15 digits", id="imsi-x"),
        pytest.param({"imsi": "+" + imsi(3)[1:]}, "IMSI must be exactly 15 digits", id="imsi-+"),
        pytest.param({"msisdn": "4477009"}, "MSISDN must be 8 to 15 digits", id="msisdn-7"),
        pytest.param({"msisdn": "+4477009"}, "MSISDN must be 8 to 15 digits", id="msisdn-+7"),
        pytest.param({"msisdn": "4" * 16}, "MSISDN must be 8 to 15 digits", id="msisdn-16"),
        pytest.param({"msisdn": "++447700900"}, "MSISDN must be 8 to 15 digits", id="msisdn-++"),
        pytest.param({"msisdn": "44 7700 900"}, "MSISDN must be 8 to 15 digits", id="msisdn-sp"),
        pytest.param({"msisdn": "4477009OO1"}, "MSISDN must be 8 to 15 digits", id="msisdn-O"),
        pytest.param({"state": "Suspended"}, f"state must be one of {STATES_TEXT}", id="state"),
        pytest.param({"state": ""}, f"state must be one of {STATES_TEXT}", id="state-empty"),
        pytest.param(
            {"cost_center": LONG}, "cost_center is longer than 200 characters", id="cost-center"
        ),
        pytest.param(
            {"profile": "{not json"}, "profile is not a valid profile document", id="profile-json"
        ),
        pytest.param(
            {"profile": '{"Unknown": 1}'},
            "profile is not a valid profile document",
            id="profile-unknown-field",
        ),
        pytest.param(
            {"profile": '{"DataService": {"DailyTreshold": -1}}'},
            "profile is not a valid profile document",
            id="profile-negative",
        ),
        pytest.param(
            {"profile": "[]"}, "profile is not a valid profile document", id="profile-array"
        ),
        pytest.param(
            {"cost_center": "a\x00b"},
            "cost_center contains a control character (U+0000)",
            id="cost-center-nul",  # PostgreSQL cannot store it: this crashed the import there
        ),
        pytest.param(
            {"cost_center": "a\x1b[31mb"},
            "cost_center contains a control character (U+001B)",
            id="cost-center-escape",
        ),
        pytest.param(
            {"cost_center": "a\x85b"},
            "cost_center contains a control character (U+0085)",
            id="cost-center-c1",
        ),
        pytest.param({"apn": LONG}, "apn is longer than 200 characters", id="apn"),
        pytest.param({"apn": "x" * 100_000}, "apn is longer than 200 characters", id="apn-100000"),
        pytest.param(
            {"apn": "a", "static_ip": LONG}, "static_ip is longer than 200 characters", id="ip"
        ),
        pytest.param(
            {"custom_field_3": LONG}, "custom_field_3 is longer than 200 characters", id="cf3"
        ),
        pytest.param(
            {"custom_field_3": "x\x00"},
            "custom_field_3 contains a control character (U+0000)",
            id="cf3-nul",
        ),
        pytest.param(
            {"data_daily_threshold": "9" * 40},
            f"data_daily_threshold is larger than {2**63 - 1}",
            id="daily-threshold-40-nines",
        ),
        pytest.param(
            {"data_monthly_threshold": str(2**63)},
            f"data_monthly_threshold is larger than {2**63 - 1}",
            id="monthly-threshold-2**63",
        ),
        pytest.param(
            {"data_daily_threshold": "9" * 5000},  # beyond what int() converts
            f"data_daily_threshold is larger than {2**63 - 1}",
            id="daily-threshold-5000-digits",
        ),
        pytest.param(
            {"profile": json.dumps({"DataService": {"DailyTreshold": 2**63}})},
            "profile is not a valid profile document (DataService.DailyTreshold: Input should be "
            f"less than or equal to {2**63 - 1})",
            id="profile-threshold-2**63",
        ),
        pytest.param(
            {"profile": json.dumps({"SMSService": {"FeatureCodes": ["ok", LONG]}})},
            "profile is not a valid profile document (SMSService.FeatureCodes.1: String should "
            "have at most 200 characters)",
            id="profile-long-feature-code",
        ),
        pytest.param(
            {"profile": json.dumps({"SMSService": {"FeatureCodes": ["MO-SMS"] * 101}})},
            "profile is not a valid profile document (SMSService.FeatureCodes: List should have "
            "at most 100 items after validation, not 101)",
            id="profile-101-feature-codes",
        ),
        pytest.param(
            {"profile": json.dumps({"AccessPoints": [{"Code": "apn"}] * 21})},
            "profile is not a valid profile document (AccessPoints: List should have at most 20 "
            "items after validation, not 21)",
            id="profile-21-access-points",
        ),
        pytest.param(
            {"profile": json.dumps({"DataService": {"Plan": {"Description": "a\x00b"}}})},
            "profile is not a valid profile document (DataService.Plan.Description: contains a "
            "control character (U+0000))",
            id="profile-nul",
        ),
        pytest.param(
            {"profile": json.dumps({"CustomFields": {"Custom Field 1": "a\tb"}})},
            "profile is not a valid profile document (CustomFields.Custom Field 1: contains a "
            "control character (U+0009))",
            id="profile-tab",
        ),
        pytest.param(
            {"data_daily_threshold": "ten"},
            "data_daily_threshold must be a whole number",
            id="daily-threshold",
        ),
        pytest.param(
            {"data_monthly_threshold": "-5"},
            "data_monthly_threshold must be a whole number",
            id="monthly-threshold",
        ),
    ],
)
def test_each_rule_reports_its_problem_on_its_line_and_nothing_is_imported(
    run_import: Callable[..., ImportReport],
    write: Callable[..., Path],
    engine: Engine,
    change: dict[str, str],
    problem: str,
) -> None:
    rows = [sim(1), sim(2), {**sim(3), **change}, sim(4)]
    header = [*HEADER, "cost_center", "profile", *SHORTHANDS]

    report = run_import(write(rows, header=header))

    assert report.rows == 4
    assert report.imported == 0
    [error] = report.errors
    assert error.line == 4  # the header is line 1
    assert error.message.startswith(problem)
    assert count(engine) == 0


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"iccid": iccid(1, 20)}, id="iccid-20"),
        pytest.param({"msisdn": "44770090"}, id="msisdn-8"),
        pytest.param({"msisdn": "+" + "4" * 15}, id="msisdn-+15"),
        pytest.param({"cost_center": "x" * 200}, id="cost-center-200"),
        pytest.param({"cost_center": "Zürich, Ωμέγα 🚚"}, id="cost-center-unicode"),
        pytest.param({"profile": "{}"}, id="profile-empty-object"),
        pytest.param({"apn": "x" * 200, "static_ip": "y" * 200}, id="apn-200"),
        pytest.param({"custom_field_7": "x" * 200}, id="custom-field-200"),
        pytest.param({"data_daily_threshold": str(2**63 - 1)}, id="threshold-max"),
        pytest.param({"data_monthly_threshold": "0" * 5000 + "1"}, id="threshold-leading-zeros"),
        pytest.param(
            {"profile": json.dumps({"VoiceService": {"MonthlyTreshold": 2**63 - 1}})},
            id="profile-threshold-max",
        ),
        pytest.param(
            {"profile": json.dumps({"DataService": {"Plan": {"Description": "x" * 200}}})},
            id="profile-text-200",
        ),
    ],
)
def test_the_limits_of_each_rule_are_accepted(
    run_import: Callable[..., ImportReport], write: Callable[..., Path], change: dict[str, str]
) -> None:
    rows = [{**sim(1), **change}]

    report = run_import(write(rows, header=[*HEADER, "cost_center", "profile", *SHORTHANDS]))

    assert (report.imported, report.errors) == (1, [])


def test_every_problem_of_a_row_is_reported(
    run_import: Callable[..., ImportReport], write: Callable[..., Path]
) -> None:
    bad = {"iccid": "1", "imsi": "2", "msisdn": "3", "state": "Lost"}

    report = run_import(write([sim(1), bad]))

    assert report.errors == [
        RowError(3, "ICCID must be 19 or 20 digits"),
        RowError(3, "IMSI must be exactly 15 digits"),
        RowError(3, "MSISDN must be 8 to 15 digits"),
        RowError(3, f"state must be one of {STATES_TEXT}"),
    ]


def test_a_row_with_the_wrong_number_of_fields_is_reported(
    run_import: Callable[..., ImportReport], write: Callable[..., Path], engine: Engine
) -> None:
    good = [",".join(sim(n).values()) for n in (1, 2, 3)]
    text = "\n".join(
        [",".join(HEADER), good[0], good[1] + ",extra", iccid(9) + "," + imsi(9), good[2]]
    )

    report = run_import(write(text + "\n"))

    assert report.rows == 4
    assert report.errors == [
        RowError(3, "expected the header's number of fields, got 5"),
        RowError(4, "expected the header's number of fields, got 2"),
    ]
    assert count(engine) == 0


def test_line_numbers_count_blank_lines_and_errors_come_in_line_order(
    run_import: Callable[..., ImportReport], write: Callable[..., Path]
) -> None:
    lines = csv_text([sim(1), {**sim(2), "imsi": "1"}, sim(1), {**sim(4), "state": "x"}])
    header, *rows = lines.strip().split("\n")
    text = "\n".join([header, "", rows[0], "", rows[1], rows[2], rows[3]]) + "\n"

    report = run_import(write(text))

    assert [(e.line, e.message.split()[0]) for e in report.errors] == [
        (5, "IMSI"),
        (6, "duplicate"),
        (6, "duplicate"),
        (6, "duplicate"),
        (7, "state"),
    ]


# --- duplicates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "label", "same"),
    [
        ("iccid", "ICCID", iccid(1)),
        ("imsi", "IMSI", imsi(1)),
        ("msisdn", "MSISDN", msisdn(1)),
    ],
)
def test_a_duplicate_inside_the_file_is_reported_on_the_later_line(
    run_import: Callable[..., ImportReport],
    write: Callable[..., Path],
    engine: Engine,
    column: str,
    label: str,
    same: str,
) -> None:
    rows = [sim(1), sim(2), {**sim(3), column: same}]

    report = run_import(write(rows))

    assert report.errors == [
        RowError(4, f"duplicate {label} {same} (already in this file, line 2)")
    ]
    assert report.imported == 0
    assert count(engine) == 0


def test_msisdns_with_and_without_plus_are_the_same_number(
    run_import: Callable[..., ImportReport], write: Callable[..., Path]
) -> None:
    rows = [sim(1), {**sim(2), "msisdn": "+" + msisdn(1)}]

    report = run_import(write(rows))

    assert report.errors == [
        RowError(3, f"duplicate MSISDN {msisdn(1)} (already in this file, line 2)")
    ]


def test_every_repeat_of_a_value_is_reported(
    run_import: Callable[..., ImportReport], write: Callable[..., Path]
) -> None:
    rows = [sim(1), {**sim(2), "iccid": iccid(1)}, {**sim(3), "iccid": iccid(1)}]

    report = run_import(write(rows))

    # Each repeat names the first line with the value, not merely an earlier one.
    assert report.errors == [
        RowError(3, f"duplicate ICCID {iccid(1)} (already in this file, line 2)"),
        RowError(4, f"duplicate ICCID {iccid(1)} (already in this file, line 2)"),
    ]


def test_a_duplicate_names_the_first_line_of_its_value_in_each_column(
    run_import: Callable[..., ImportReport], write: Callable[..., Path]
) -> None:
    rows = [
        sim(1),
        sim(2),
        sim(3),
        {**sim(4), "imsi": imsi(3), "msisdn": msisdn(2)},  # line 5
        {**sim(5), "iccid": iccid(4), "imsi": imsi(3)},  # line 6
    ]
    text = csv_text(rows)
    header, *lines = text.strip().split("\n")
    # A blank line counts: the first line of sim(2) is 4 in the file.
    report = run_import(write("\n".join([header, lines[0], "", *lines[1:]]) + "\n"))

    assert report.errors == [
        RowError(6, f"duplicate IMSI {imsi(3)} (already in this file, line 5)"),
        RowError(6, f"duplicate MSISDN {msisdn(2)} (already in this file, line 4)"),
        RowError(7, f"duplicate ICCID {iccid(4)} (already in this file, line 6)"),
        RowError(7, f"duplicate IMSI {imsi(3)} (already in this file, line 5)"),
    ]


@pytest.mark.parametrize(
    ("column", "label", "same"),
    [
        ("iccid", "ICCID", iccid(1)),
        ("imsi", "IMSI", imsi(1)),
        ("msisdn", "MSISDN", msisdn(1)),
    ],
)
def test_a_sim_already_in_the_inventory_is_reported(
    run_import: Callable[..., ImportReport],
    write: Callable[..., Path],
    engine: Engine,
    account_id: int,
    other_account_id: int,
    column: str,
    label: str,
    same: str,
) -> None:
    # The existing SIM belongs to another account: identifiers are unique across the inventory.
    assert run_import(write([sim(1)]), account=other_account_id).imported == 1

    report = run_import(write([sim(2), {**sim(3), column: same}]))

    assert report.errors == [RowError(3, f"{label} {same} already exists")]
    assert report.imported == 0
    assert count(engine, account_id) == 0
    assert count(engine) == 1


def test_importing_the_same_file_twice_reports_every_row(
    run_import: Callable[..., ImportReport], write: Callable[..., Path], engine: Engine
) -> None:
    path = write([sim(1), sim(2)])
    assert run_import(path).imported == 2

    report = run_import(path)

    assert report.imported == 0
    assert [e.line for e in report.errors] == [2, 2, 2, 3, 3, 3]
    assert count(engine) == 2


# --- all or nothing, or --skip-invalid ------------------------------------------------------


def test_the_cli_imports_nothing_from_a_file_with_errors(
    cli: Cli, write: Callable[..., Path], engine: Engine, account_id: int
) -> None:
    rows = [sim(1), {**sim(2), "imsi": "123"}, sim(3), {**sim(4), "iccid": iccid(1)}]

    result = cli("sims", "import", str(write(rows)), "--account", str(account_id), exit_code=1)

    assert "line 3: IMSI must be exactly 15 digits" in result.stdout
    assert f"line 5: duplicate ICCID {iccid(1)} (already in this file, line 2)" in result.stdout
    assert "4 rows read, 0 imported, 2 problems." in result.stdout
    assert "nothing was imported" in result.stderr
    assert count(engine) == 0


def test_the_cli_json_report_of_a_file_with_errors(
    cli: Cli, write: Callable[..., Path], engine: Engine, account_id: int
) -> None:
    rows = [sim(1), {**sim(2), "state": "Lost"}]

    result = cli(
        "sims", "import", str(write(rows)), "--account", str(account_id), "--json", exit_code=1
    )

    assert json.loads(result.stdout) == {
        "rows": 2,
        "imported": 0,
        "errors": [{"line": 3, "error": f"state must be one of {STATES_TEXT}"}],
    }
    assert count(engine) == 0


def test_skip_invalid_imports_the_good_rows_and_reports_the_bad(
    cli: Cli,
    run_import: Callable[..., ImportReport],
    write: Callable[..., Path],
    engine: Engine,
    account_id: int,
    other_account_id: int,
) -> None:
    run_import(write([sim(100)]), account=other_account_id)
    rows = [
        sim(1),
        {**sim(2), "iccid": iccid(2)[:-1] + str((int(iccid(2)[-1]) + 1) % 10)},
        sim(3),
        {**sim(4), "msisdn": msisdn(1)},  # repeats line 2
        {**sim(5), "imsi": imsi(100)},  # already in the inventory
        sim(6, "ready"),
    ]
    path = write(rows)

    result = cli(
        "sims", "import", str(path), "--account", str(account_id), "--skip-invalid", "--json"
    )

    assert json.loads(result.stdout) == {
        "rows": 6,
        "imported": 3,
        "errors": [
            {"line": 3, "error": "ICCID check digit (Luhn) is wrong"},
            {"line": 5, "error": f"duplicate MSISDN {msisdn(1)} (already in this file, line 2)"},
            {"line": 6, "error": f"IMSI {imsi(100)} already exists"},
        ],
    }
    assert count(engine, account_id) == 3
    for n in (1, 3, 6):
        assert stored(engine, account_id, msisdn(n)) is not None
    first = stored(engine, account_id, msisdn(1))
    assert first is not None
    assert first.iccid == iccid(1)  # the earlier of two duplicates is the one kept
    assert count(engine, other_account_id) == 1


def test_skip_invalid_imports_around_text_postgresql_cannot_store(
    cli: Cli, write: Callable[..., Path], engine: Engine, account_id: int
) -> None:
    """A NUL in a cell was sent to the database, where PostgreSQL refused it with a traceback."""
    rows = [sim(1, cost_center="a\x00b"), sim(2, cost_center="ok"), sim(3, custom_field_1="\x00")]

    result = cli(
        "sims", "import", str(write(rows)), "--account", str(account_id), "--skip-invalid", "--json"
    )

    assert json.loads(result.stdout)["errors"] == [
        {"line": 2, "error": "cost_center contains a control character (U+0000)"},
        {"line": 4, "error": "custom_field_1 contains a control character (U+0000)"},
    ]
    assert count(engine, account_id) == 1
    found = stored(engine, account_id, msisdn(2))
    assert found is not None
    assert found.cost_center == "ok"


def test_the_largest_thresholds_are_stored_exactly(
    run_import: Callable[..., ImportReport],
    write: Callable[..., Path],
    engine: Engine,
    account_id: int,
) -> None:
    """2**63 - 1 fits the int64 a client reads a threshold into, and survives the JSON column."""
    largest = 2**63 - 1
    document = {"SMSService": {"DailyTreshold": largest}}
    row = sim(1, profile=json.dumps(document), data_monthly_threshold=str(largest))

    assert run_import(write([row])).imported == 1

    found = stored(engine, account_id, msisdn(1))
    assert found is not None
    assert found.profile["SMSService"]["DailyTreshold"] == largest
    assert found.profile["DataService"]["MonthlyTreshold"] == largest


def test_skip_invalid_without_json_prints_the_problems(
    cli: Cli, write: Callable[..., Path], engine: Engine, account_id: int
) -> None:
    rows = [sim(1), {**sim(2), "msisdn": "12"}]

    result = cli("sims", "import", str(write(rows)), "--account", str(account_id), "--skip-invalid")

    assert "line 3: MSISDN must be 8 to 15 digits" in result.stdout
    assert "2 rows read, 1 imported, 1 problem." in result.stdout
    assert count(engine, account_id) == 1


def test_skip_invalid_with_only_bad_rows_imports_nothing(
    run_import: Callable[..., ImportReport], write: Callable[..., Path], engine: Engine
) -> None:
    report = run_import(write([{**sim(1), "state": "?"}]), skip_invalid=True)

    assert (report.rows, report.imported, len(report.errors)) == (1, 0, 1)
    assert count(engine) == 0


def test_an_import_batch_larger_than_one_staging_batch_is_all_or_nothing(
    run_import: Callable[..., ImportReport], write: Callable[..., Path], engine: Engine
) -> None:
    n = BATCH + 5
    rows = [sim(i) for i in range(n)]
    rows.append({**sim(n), "msisdn": msisdn(0)})
    path = write(rows)

    failed = run_import(path)
    assert (failed.rows, failed.imported) == (n + 1, 0)
    # The first occurrence is in the first staging batch, the repeat in the second.
    assert failed.errors == [
        RowError(n + 2, f"duplicate MSISDN {msisdn(0)} (already in this file, line 2)")
    ]
    assert count(engine) == 0

    assert run_import(path, skip_invalid=True).imported == n
    assert count(engine) == n


# --- file-level errors ----------------------------------------------------------------------


def test_an_unknown_column_is_a_file_level_error(
    cli: Cli, write: Callable[..., Path], engine: Engine, account_id: int
) -> None:
    path = write([sim(1, colour="red")])

    result = cli("sims", "import", str(path), "--account", str(account_id), exit_code=1)

    message = " ".join(result.stderr.split())  # the console may wrap a long line
    assert message.startswith(f"error: {path}: unknown column(s): colour (known: iccid, imsi")
    assert result.stdout == ""
    assert count(engine) == 0


def test_missing_columns_are_a_file_level_error(
    run_import: Callable[..., ImportReport], write: Callable[..., Path], engine: Engine
) -> None:
    path = write("iccid,msisdn,colour\n1,2,3\n")

    with pytest.raises(ImportFileError) as raised:
        run_import(path)

    message = str(raised.value)
    assert message.startswith("missing column(s): imsi, state; unknown column(s): colour (known:")
    assert "custom_field_7" in message
    assert count(engine) == 0


def test_an_empty_file_is_a_file_level_error(
    run_import: Callable[..., ImportReport], write: Callable[..., Path]
) -> None:
    with pytest.raises(ImportFileError, match="the file is empty: it needs a header row"):
        run_import(write(""))


def test_a_file_that_is_not_utf8_is_a_file_level_error(
    run_import: Callable[..., ImportReport], tmp_path: Path, engine: Engine
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(csv_text([sim(1, cost_center="Zürich")]).encode("latin-1"))

    with pytest.raises(ImportFileError, match="the file is not UTF-8 text"):
        run_import(path)
    assert count(engine) == 0


def test_a_missing_file_is_a_clear_error(
    cli: Cli,
    run_import: Callable[..., ImportReport],
    tmp_path: Path,
    account_id: int,
) -> None:
    path = tmp_path / "nowhere.csv"

    result = cli("sims", "import", str(path), "--account", str(account_id), exit_code=1)

    assert " ".join(result.stderr.split()) == f"error: no such file: {path}"
    with pytest.raises(ImportFileError, match="cannot read"):
        run_import(path)


def test_a_directory_is_not_taken_for_a_missing_file(
    cli: Cli, tmp_path: Path, account_id: int
) -> None:
    result = cli("sims", "import", str(tmp_path), "--account", str(account_id), exit_code=1)

    assert " ".join(result.stderr.split()) == (
        f"error: {tmp_path} is a directory: give the CSV file to import"
    )


def test_an_unknown_account_is_refused_before_reading(
    cli: Cli, write: Callable[..., Path], engine: Engine
) -> None:
    result = cli("sims", "import", str(write([sim(1)])), "--account", "999", exit_code=1)

    assert result.stderr.strip().lower().rstrip(".") == "error: no account with id 999"
    assert count(engine) == 0


def test_a_cell_beyond_the_csv_size_limit_names_its_line(
    run_import: Callable[..., ImportReport], write: Callable[..., Path], engine: Engine
) -> None:
    rows = [sim(1), sim(2), {**sim(3), "cost_center": "x" * 200_000}, sim(4)]

    with pytest.raises(ImportFileError, match="not valid CSV at line 4: field larger than"):
        run_import(write(rows))
    assert count(engine) == 0


def test_a_file_error_leaves_the_next_import_working(
    run_import: Callable[..., ImportReport], write: Callable[..., Path], engine: Engine
) -> None:
    with pytest.raises(ImportFileError):
        run_import(write("iccid\n1\n"))

    assert run_import(write([sim(1)])).imported == 1


# --- parse_row, property-based --------------------------------------------------------------

digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


def digit_string(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=size, max_size=size)


valid_iccids = (
    st.integers(min_value=18, max_value=19)
    .flatmap(digit_string)
    .map(lambda payload: payload + str(luhn_check_digit(payload)))
)
valid_imsis = digit_string(15)
valid_msisdns = st.tuples(
    st.sampled_from(["", "+"]), st.integers(min_value=8, max_value=15).flatmap(digit_string)
).map("".join)
any_case_states = st.sampled_from([s.value for s in SimState]).flatmap(
    lambda state: st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in state)).map("".join)
)
padding = st.sampled_from(["", " ", "  "])


@given(
    iccid_=valid_iccids,
    imsi_=valid_imsis,
    msisdn_=valid_msisdns,
    state=any_case_states,
    pad=padding,
)
def test_parse_row_accepts_every_row_of_valid_identifiers(
    iccid_: str, imsi_: str, msisdn_: str, state: str, pad: str
) -> None:
    record = {
        "iccid": pad + iccid_,
        "imsi": imsi_ + pad,
        "msisdn": pad + msisdn_ + pad,
        "state": pad + state,
    }

    row, problems = parse_row(record)

    assert problems == []
    assert row is not None
    assert row["iccid"] == iccid_
    assert row["imsi"] == imsi_
    assert row["msisdn"] == msisdn_.removeprefix("+")
    assert row["state"] == SimState(state.capitalize()).value
    assert row["cost_center"] is None
    assert json.loads(row["profile"]) == EMPTY_PROFILE


@given(iccid_=valid_iccids, other=digits, imsi_=valid_imsis, msisdn_=valid_msisdns)
def test_parse_row_rejects_an_iccid_whose_check_digit_was_changed(
    iccid_: str, other: str, imsi_: str, msisdn_: str
) -> None:
    if other == iccid_[-1]:
        other = str((int(other) + 1) % 10)
    record = {"iccid": iccid_[:-1] + other, "imsi": imsi_, "msisdn": msisdn_, "state": "Active"}

    row, problems = parse_row(record)

    assert row is None
    assert problems == ["ICCID check digit (Luhn) is wrong"]


# --- bugs found in review, each with the test that would have caught it ---------------------


@pytest.mark.parametrize("value", ["²", "١٢"])
def test_a_threshold_in_non_ascii_digits_is_reported(value: str) -> None:
    row, problems = parse_row({**sim(1), "data_daily_threshold": value})

    assert row is None
    assert problems == ["data_daily_threshold must be a whole number"]


def test_a_repeated_column_is_a_file_level_error(
    run_import: Callable[..., ImportReport], write: Callable[..., Path], engine: Engine
) -> None:
    text = f"iccid,imsi,msisdn,state,iccid\n1,{imsi(1)},{msisdn(1)},Active,{iccid(1)}\n"

    with pytest.raises(ImportFileError, match="iccid"):
        run_import(write(text))
