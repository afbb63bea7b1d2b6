"""``m2m admin``: operator commands working on the database directly (also while serving)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.spinner import Spinner
from sqlalchemy import Engine

from m2m import accounts, idempotency, operator_tokens
from m2m.audit import ADMIN_CLI
from m2m.callbacks import signing_secret
from m2m.cli import status
from m2m.cli.common import (
    JsonOption,
    console,
    fail,
    load_settings,
    migrated_engine,
    print_json,
    print_table,
    user_errors,
)
from m2m.clock import SystemClock
from m2m.console import users as console_users
from m2m.errors import NotFound
from m2m.simimport import ImportFileError, import_csv
from m2m.storage import accounts as account_store
from m2m.storage import callback_configs, retention
from m2m.storage import usage as usage_store
from m2m.storage.engine import write_transaction
from m2m.usage_import import UsageFileError
from m2m.usage_import import import_file as import_usage_file

app = typer.Typer(help="Manage accounts, credentials and SIM inventory.", no_args_is_help=True)
accounts_app = typer.Typer(help="Customer accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (the x-api-key header).", no_args_is_help=True)
apps_app = typer.Typer(help="OAuth2 applications (client_id/client_secret).", no_args_is_help=True)
tokens_app = typer.Typer(help="Permanent access tokens.", no_args_is_help=True)
sims_app = typer.Typer(help="SIM inventory.", no_args_is_help=True)
requests_app = typer.Typer(help="Lifecycle requests.", no_args_is_help=True)
users_app = typer.Typer(help="Console users (log in to /console).", no_args_is_help=True)
events_app = typer.Typer(help="The event log.", no_args_is_help=True)
usage_app = typer.Typer(help="Usage records from the network.", no_args_is_help=True)
usage_tokens_app = typer.Typer(
    help="Operator tokens for POST /operator/1.0.0/usage (the mediation system).",
    no_args_is_help=True,
)
usage_app.add_typer(usage_tokens_app, name="tokens")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="api-keys")
app.add_typer(apps_app, name="apps")
app.add_typer(tokens_app, name="tokens")
app.add_typer(sims_app, name="sims")
app.add_typer(requests_app, name="requests")
app.add_typer(users_app, name="users")
app.add_typer(events_app, name="events")
app.command("status")(status.status)
app.add_typer(usage_app, name="usage")

AccountOption = Annotated[int, typer.Option("--account", help="The account's id.")]
clock = SystemClock()

# One engine per command, disposed when the command ends: the CLI also runs in-process (tests,
# scripts), where a pool left open would hold database connections until garbage collection.
_engine: Engine | None = None


@app.callback()
def _open_database(ctx: typer.Context) -> None:
    ctx.call_on_close(_close_database)


def _database() -> Engine:
    global _engine
    if _engine is None:
        _engine = migrated_engine(load_settings(), create=False)
    return _engine


def _close_database() -> None:
    global _engine
    if _engine is not None:
        _engine.dispose()
        _engine = None


def _count(number: int, noun: str) -> str:
    """``1 problem``, ``2 problems``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _named_id(record: Any, id_key: str) -> dict[str, object]:
    """A record for ``--json``, its ``id`` named for what it identifies: one name for one thing
    across every command (``account_id`` in ``accounts list`` as in ``accounts create``)."""
    fields = asdict(record)
    return {id_key: fields.pop("id"), **fields}


def _show_secret(as_json: bool, value: dict[str, object], what: str) -> None:
    if as_json:
        print_json(value)
        return
    for key, item in value.items():
        console.print(f"{key}: [bold]{item}[/bold]", highlight=False)
    console.print(f"[yellow]Store the {what} now: it is not stored and cannot be shown again.")


def _check_account(account_id: int) -> None:
    with _database().connect() as conn:
        if account_store.get_account(conn, account_id) is None:
            raise fail(f"No account with id {account_id}.")


# --- accounts -------------------------------------------------------------------------------


@accounts_app.command("create")
def accounts_create(
    name: str,
    force: Annotated[
        bool, typer.Option("--force", help="Create it even if an account has this name.")
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Create an account (subscription active) and its first API key."""
    with user_errors():
        issued = accounts.create_account(
            _database(), clock, name, actor=ADMIN_CLI, allow_same_name=force
        )
    _show_secret(as_json, {"account_id": issued.id, "api_key": issued.secret}, "API key")


@accounts_app.command("list")
def accounts_list(as_json: bool = JsonOption) -> None:
    """List accounts with their subscription and what they hold."""
    with _database().connect() as conn:
        summaries = account_store.list_accounts(conn)
    if as_json:
        print_json(
            [
                {
                    **_named_id(s.account, "account_id"),
                    "sims": s.sims,
                    "api_keys": s.api_keys,
                    "apps": s.apps,
                    "permanent_tokens": s.permanent_tokens,
                }
                for s in summaries
            ]
        )
        return
    print_table(
        "Accounts",
        [
            "id",
            "name",
            "subscription",
            "rate limit",
            "SIMs",
            "API keys",
            "apps",
            "tokens",
            "created",
        ],
        [
            (
                s.account.id,
                s.account.name + (" (sandbox)" if s.account.is_sandbox else ""),
                s.account.subscription,
                _rate_limit_text(s.account),
                s.sims,
                s.api_keys,
                s.apps,
                s.permanent_tokens,
                s.account.created_at,
            )
            for s in summaries
        ],
    )


def _set_subscription(account_id: int, active: bool, as_json: bool) -> None:
    with user_errors():
        accounts.set_subscription(_database(), clock, account_id, active, actor=ADMIN_CLI)
    state = "active" if active else "suspended"
    if as_json:
        print_json({"account_id": account_id, "subscription": state})
    else:
        console.print(f"Account {account_id}: subscription {state}.")


@accounts_app.command("suspend")
def accounts_suspend(account_id: int, as_json: bool = JsonOption) -> None:
    """Suspend an account's subscription: its API calls are refused with 403."""
    _set_subscription(account_id, False, as_json)


@accounts_app.command("resume")
def accounts_resume(account_id: int, as_json: bool = JsonOption) -> None:
    """Make a suspended subscription active again."""
    _set_subscription(account_id, True, as_json)


@accounts_app.command("rate-limit")
def accounts_rate_limit(
    account_id: int,
    per_second: Annotated[
        float | None, typer.Option("--per-second", help="Requests per second on average.")
    ] = None,
    burst: Annotated[
        int | None,
        typer.Option(help="Requests an idle account may make at once (default: 2 x the rate)."),
    ] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Go back to the operator's default limit.")
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Set an account's request-rate limit on the M2M API (each API process applies it)."""
    if default == (per_second is not None):
        raise fail("Give either --per-second (and optionally --burst) or --default.", code=2)
    with user_errors():
        accounts.set_rate_limit(_database(), clock, account_id, per_second, burst, actor=ADMIN_CLI)
    with _database().connect() as conn:
        account = account_store.get_account(conn, account_id)
    assert account is not None
    if as_json:
        print_json(
            {
                "account_id": account_id,
                "rate_limit_per_second": account.rate_limit_per_second,
                "rate_limit_burst": account.rate_limit_burst,
            }
        )
    else:
        console.print(f"Account {account_id}: {_rate_limit_text(account)}.", highlight=False)


@accounts_app.command("usage-settings")
def accounts_usage_settings(
    account_id: int,
    time_zone: Annotated[
        str | None,
        typer.Option("--time-zone", help="Where its usage days and months begin (Europe/Berlin)."),
    ] = None,
    warning_percent: Annotated[
        int | None,
        typer.Option(
            "--warning-percent", help="Of a threshold, when usage.threshold_reached is raised."
        ),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            help="notify (events only) or deactivate (also deactivate a SIM that reaches a "
            "threshold, through a lifecycle request).",
        ),
    ] = None,
    reactivate: Annotated[
        bool | None,
        typer.Option(
            "--reactivate-next-period/--no-reactivate-next-period",
            help="Reactivate the SIMs the deactivate policy deactivated when their day or month "
            "ends (through a lifecycle request), or leave that to the customer (the default).",
        ),
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Show or set an account's usage settings (time zone, warning percentage, policy,
    reactivation at the next period)."""
    with user_errors():
        account = accounts.set_usage_settings(
            _database(),
            clock,
            account_id,
            time_zone=time_zone,
            warning_percent=warning_percent,
            policy=policy,
            reactivate=reactivate,
            actor=ADMIN_CLI,
        )
    if as_json:
        print_json(
            {
                "account_id": account_id,
                "time_zone": account.time_zone,
                "usage_warning_percent": account.usage_warning_percent,
                "usage_policy": account.usage_policy,
                "usage_reactivate": account.usage_reactivate,
            }
        )
    else:
        back = "reactivated" if account.usage_reactivate else "not reactivated"
        console.print(
            f"Account {account_id}: usage days in {account.time_zone}, "
            f"warned at {account.usage_warning_percent}% of a threshold, "
            f"policy {account.usage_policy}, "
            f"SIMs it deactivated {back} at the next period.",
            highlight=False,
        )


def _rate_limit_text(account: account_store.Account) -> str:
    if account.rate_limit_per_second is None:
        return "default rate limit"
    return f"{account.rate_limit_per_second:g}/s, bursts of {account.rate_limit_burst}"


@accounts_app.command("signing-secret")
def accounts_signing_secret(account_id: int, as_json: bool = JsonOption) -> None:
    """Print an account's current callback signing secret, for its receivers (it is derived from
    M2M_SECRET_KEY, never stored; the console rotates it)."""
    settings = load_settings()
    if settings.secret_key is None:
        raise fail("M2M_SECRET_KEY is not set: signing secrets derive from the server's key")
    with _database().connect() as conn:
        if account_store.get_account(conn, account_id) is None:
            raise fail(f"No account with id {account_id}.")
        config = callback_configs.get_callback_config(conn, account_id)
    version = config.signing_key_version if config else 1
    secret = signing_secret(settings.secret_key.get_secret_value(), account_id, version)
    if as_json:
        print_json({"account_id": account_id, "version": version, "signing_secret": secret})
    else:
        console.print(f"signing_secret (version {version}): [bold]{secret}[/bold]", highlight=False)


# --- API keys -------------------------------------------------------------------------------


@keys_app.command("create")
def api_keys_create(account: AccountOption, as_json: bool = JsonOption) -> None:
    """Create another API key for an account."""
    with user_errors():
        issued = accounts.create_api_key(_database(), clock, account, actor=ADMIN_CLI)
    _show_secret(as_json, {"api_key_id": issued.id, "api_key": issued.secret}, "API key")


@keys_app.command("revoke")
def api_keys_revoke(key_id: int, as_json: bool = JsonOption) -> None:
    """Revoke an API key: calls using it are refused at once."""
    with user_errors():
        accounts.revoke_api_key(_database(), clock, key_id, actor=ADMIN_CLI)
    if as_json:
        print_json({"api_key_id": key_id, "revoked": True})
    else:
        console.print(f"API key {key_id} revoked.")


@keys_app.command("list")
def api_keys_list(account: AccountOption, as_json: bool = JsonOption) -> None:
    """List an account's API keys (their first characters only)."""
    _check_account(account)
    with _database().connect() as conn:
        keys = account_store.list_api_keys(conn, account)
    if as_json:
        print_json([_named_id(k, "api_key_id") for k in keys])
    else:
        print_table(
            f"API keys of account {account}",
            ["id", "starts with", "created", "revoked"],
            [(k.id, k.hint + "…", k.created_at, k.revoked_at) for k in keys],
        )


# --- OAuth2 applications --------------------------------------------------------------------


@apps_app.command("create")
def apps_create(
    account: AccountOption,
    name: Annotated[str, typer.Option(help="A label for the application.")] = "Default application",
    as_json: bool = JsonOption,
) -> None:
    """Create an OAuth2 application for an account."""
    with user_errors():
        client_id, secret = accounts.create_app(_database(), clock, account, name, actor=ADMIN_CLI)
    _show_secret(as_json, {"client_id": client_id, "client_secret": secret}, "client secret")


@apps_app.command("list")
def apps_list(account: AccountOption, as_json: bool = JsonOption) -> None:
    """List an account's OAuth2 applications."""
    _check_account(account)
    with _database().connect() as conn:
        found = account_store.list_apps(conn, account)
    if as_json:
        print_json([{"app_id": a.id, "name": a.name, "client_id": a.client_id} for a in found])
    else:
        print_table(
            f"Applications of account {account}",
            ["id", "name", "client_id"],
            [(a.id, a.name, a.client_id) for a in found],
        )


# --- permanent tokens -----------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    account: AccountOption,
    name: Annotated[str, typer.Option(help="What the token is for.")],
    as_json: bool = JsonOption,
) -> None:
    """Create a permanent token (valid until deleted)."""
    with user_errors():
        issued = accounts.create_permanent_token(_database(), clock, account, name, actor=ADMIN_CLI)
    _show_secret(as_json, {"token_id": issued.id, "token": issued.secret}, "token")


@tokens_app.command("delete")
def tokens_delete(token_id: int, as_json: bool = JsonOption) -> None:
    """Delete a permanent token: calls using it are refused at once."""
    with user_errors():
        accounts.delete_permanent_token(_database(), clock, token_id, actor=ADMIN_CLI)
    if as_json:
        print_json({"token_id": token_id, "deleted": True})
    else:
        console.print(f"Permanent token {token_id} deleted.")


@tokens_app.command("list")
def tokens_list(account: AccountOption, as_json: bool = JsonOption) -> None:
    """List an account's permanent tokens."""
    _check_account(account)
    with _database().connect() as conn:
        found = account_store.list_permanent_tokens(conn, account)
    if as_json:
        print_json([_named_id(t, "token_id") for t in found])
    else:
        print_table(
            f"Permanent tokens of account {account}",
            ["id", "name", "created"],
            [(t.id, t.name, t.created_at) for t in found],
        )


# --- console users --------------------------------------------------------------------------


@users_app.command("create")
def users_create(
    account: AccountOption,
    email: Annotated[str, typer.Option(help="The user's email, used to log in.")],
    generate: Annotated[
        bool,
        typer.Option(
            "--generate-password", help="Generate a password (printed once) instead of asking."
        ),
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Create a console user of an account; the password is asked for, or generated."""
    if generate or as_json:
        # Scripts (--json) answer no prompt: they get a generated password.
        password, shown = console_users.generate_password(), True
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        shown = False
    with user_errors():
        user_id = console_users.create_user(
            _database(), clock, account, email, password, actor=ADMIN_CLI
        )
    value: dict[str, object] = {"user_id": user_id, "email": console_users.normalize_email(email)}
    if shown:
        _show_secret(as_json, {**value, "password": password}, "password")
    elif as_json:
        print_json(value)
    else:
        console.print(f"Console user {value['email']} created (id {user_id}).", highlight=False)


# --- SIM inventory --------------------------------------------------------------------------


@contextmanager
def _import_display(
    size: int, quiet: bool
) -> Iterator[tuple[Callable[[int], None], Callable[[str], None]]]:
    """A bar while the file is read and checked, then a spinner naming what the database does:
    at a million rows that takes seconds, and a bar stuck at 100% looked like a hang.
    Yields the import's ``progress`` and ``phase`` callbacks."""
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=True,
    )
    task = bar.add_task("Validating", total=size)
    waiting = Live(console=console, transient=True)

    def phase(name: str) -> None:
        if quiet:
            return
        bar.stop()  # one live display at a time
        waiting.start()
        label = f"{name[:1].upper()}{name[1:]}…"
        waiting.update(Spinner("dots", text=label), refresh=True)  # drawn however short the step

    with bar:
        try:
            yield (lambda n: bar.advance(task, n)), phase
        finally:
            waiting.stop()


@sims_app.command("import")
def sims_import(
    file: Annotated[Path, typer.Argument(help="CSV with iccid, imsi, msisdn, state, …")],
    account: AccountOption,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows of a file with errors.")
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Import SIM cards from CSV: all rows or, if any is invalid, none (see --skip-invalid)."""
    _check_account(account)
    engine = _database()
    if file.is_dir():
        raise fail(f"{file} is a directory: give the CSV file to import")
    if not file.is_file():
        raise fail(f"no such file: {file}")
    size = file.stat().st_size
    with _import_display(size, quiet=as_json or size < 1 << 20) as (progress, phase):
        try:
            report = import_csv(
                engine,
                file,
                account,
                clock.now(),
                actor=ADMIN_CLI,
                skip_invalid=skip_invalid,
                progress=progress,
                phase=phase,
            )
        except ImportFileError as error:
            raise fail(f"{file}: {error}") from error
        except NotFound as error:
            raise fail(error.message) from error
    errors = [{"line": e.line, "error": e.message} for e in report.errors]
    if as_json:
        print_json({"rows": report.rows, "imported": report.imported, "errors": errors})
    else:
        shown = report.errors[:50]
        for e in shown:
            console.print(f"line {e.line}: {e.message}", highlight=False, markup=False)
        if len(report.errors) > len(shown):
            console.print(f"… and {_count(len(report.errors) - len(shown), 'more problem')}.")
        console.print(
            f"{_count(report.rows, 'row')} read, {report.imported} imported, "
            f"{_count(len(report.errors), 'problem')}."
        )
    if report.errors and not skip_invalid:
        raise fail("nothing was imported; fix the rows above or use --skip-invalid", code=1)


@usage_app.command("rebuild-account-days")
def usage_rebuild_account_days(
    account: Annotated[
        int | None, typer.Option("--account", help="Only this account (default: every one).")
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Sum the accounts' day totals (the console overview's days) again from their SIMs' days.
    Run it once every process runs this release, after an upgrade during which the previous
    release kept counting usage (its batches are not in the accounts' days)."""
    with write_transaction(_database()) as conn:
        rows = usage_store.rebuild_account_days(conn, account)
    if as_json:
        print_json({"account_days": rows})
    else:
        console.print(f"{_count(rows, 'account day')} summed from the SIMs' days.")


@usage_app.command("import")
def usage_import(
    file: Annotated[Path, typer.Argument(help="CSV with iccid or imsi, start, counters …")],
    as_json: bool = JsonOption,
) -> None:
    """Count usage records from a CSV file: all of them or, if one is wrong or names no SIM,
    none. The same file imported again counts nothing twice (docs/usage.md)."""
    if not file.is_file():
        raise fail(f"no such file: {file}")
    try:
        report = import_usage_file(_database(), clock, file)
    except UsageFileError as error:
        raise fail(f"{file}: {error}") from error
    problems = [{"line": line, "error": message} for line, message in report.problems]
    if as_json:
        print_json(
            {
                "records": report.records,
                "counted": report.counted,
                "already_counted": report.already_counted,
                "inactive": report.inactive,
                "threshold_events": report.crossings,
                "errors": problems,
            }
        )
    else:
        for line, message in report.problems[:50]:
            console.print(f"line {line}: {message}", highlight=False, markup=False)
        if len(report.problems) > 50:
            console.print(f"… and {_count(len(report.problems) - 50, 'more problem')}.")
        console.print(
            f"{_count(report.records, 'record')} read, {report.counted} counted, "
            f"{report.already_counted} counted before, {report.inactive} for SIMs not Active, "
            f"{_count(report.crossings, 'threshold event')}.",
            highlight=False,
        )
    if report.problems:
        raise fail("nothing was counted; fix the lines above and import the file again", code=1)


@usage_tokens_app.command("create")
def usage_tokens_create(name: str, as_json: bool = JsonOption) -> None:
    """A token for the operator's mediation system to post usage with (shown once)."""
    with user_errors():
        token_id, secret = operator_tokens.create(_database(), clock, name)
    _show_secret(as_json, {"token_id": token_id, "token": secret}, "operator token")


@usage_tokens_app.command("list")
def usage_tokens_list(as_json: bool = JsonOption) -> None:
    """The operator tokens, live and revoked (never the secrets)."""
    tokens = operator_tokens.list_all(_database())
    if as_json:
        print_json([_named_id(t, "token_id") for t in tokens])
        return
    print_table(
        "Operator tokens",
        ["id", "name", "starts with", "created", "revoked"],
        [[t.id, t.name, t.hint, _when(t.created_at), _when(t.revoked_at)] for t in tokens],
    )


@usage_tokens_app.command("revoke")
def usage_tokens_revoke(token_id: int, as_json: bool = JsonOption) -> None:
    """Revoke an operator token: the next batch posted with it is refused."""
    with user_errors():
        operator_tokens.revoke(_database(), clock, token_id)
    if as_json:
        print_json({"token_id": token_id, "revoked": True})
    else:
        console.print(f"Operator token {token_id} revoked.", highlight=False)


def _when(moment: Any) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


PURGE_BATCH = 200  # rows per transaction: short write locks while the server runs
EVENT_PURGE_BATCH = 5_000  # events per transaction: plain rows, no cascade
# SIMs whose old hours one transaction deletes: a month of hours is ~720 rows a SIM.
USAGE_PURGE_SIMS = 100


def _purge_in_batches(delete_batch: Callable[[Any, int], int], size: int = PURGE_BATCH) -> int:
    """Call ``delete_batch(conn, size)`` in a transaction of its own until it deletes fewer
    than ``size``; the total deleted."""
    deleted = 0
    while True:
        with write_transaction(_database()) as conn:
            batch = delete_batch(conn, size)
        deleted += batch
        if batch < size:
            return deleted


def _purge_usage_hours(before: datetime) -> int:
    """The hours before ``before``, a range of SIMs per transaction (see the storage's)."""
    deleted = 0
    next_sim: int | None = 0
    while next_sim is not None:
        with write_transaction(_database()) as conn:
            batch, next_sim = retention.purge_usage_hours(conn, before, next_sim, USAGE_PURGE_SIMS)
        deleted += batch
    return deleted


def _purge(requests_older_than: int | None, as_json: bool) -> None:
    """What every purge deletes: audit events past M2M_AUDIT_RETENTION_DAYS, events past
    M2M_EVENT_RETENTION_DAYS and idempotency keys past their 24 hours; with
    ``requests_older_than``, settled requests too."""
    now = clock.now()
    report: dict[str, object] = {}
    lines = []
    if requests_older_than is not None:
        cutoff = now - timedelta(days=requests_older_than)
        report["deleted_requests"] = _purge_in_batches(
            lambda conn, size: retention.purge_finished_requests(conn, cutoff, size)
        )
        report["finished_before"] = cutoff.isoformat()
        lines.append(
            f"Deleted {report['deleted_requests']} requests finished before "
            f"{cutoff:%Y-%m-%d %H:%M} UTC."
        )
    audit_cutoff = now - timedelta(days=load_settings().audit_retention_days)
    audit_events = _purge_in_batches(
        lambda conn, size: retention.purge_audit_events(conn, audit_cutoff, size)
    )
    keys_cutoff = now - idempotency.KEY_LIFETIME
    keys = _purge_in_batches(
        lambda conn, size: retention.purge_idempotency_keys(conn, keys_cutoff, size)
    )
    events_cutoff = now - timedelta(days=load_settings().event_retention_days)
    events = _purge_in_batches(
        lambda conn, size: retention.purge_events(conn, events_cutoff, size), EVENT_PURGE_BATCH
    )
    messages = _purge_in_batches(
        lambda conn, size: retention.purge_event_messages(conn, events_cutoff, size),
        EVENT_PURGE_BATCH,
    )
    hours_days = load_settings().usage_hourly_retention_days
    if hours_days:
        hours_cutoff = now - timedelta(days=hours_days)
        hours = _purge_usage_hours(hours_cutoff)
        report["deleted_usage_hours"] = hours
        report["usage_hours_before"] = hours_cutoff.isoformat()
        lines.append(
            f"Deleted {_count(hours, 'hour')} of SIMs' usage before "
            f"{hours_cutoff:%Y-%m-%d %H:%M} UTC (M2M_USAGE_HOURLY_RETENTION_DAYS)."
        )
    report["deleted_events"] = events
    report["deleted_event_messages"] = messages
    report["events_before"] = events_cutoff.isoformat()
    report["deleted_audit_events"] = audit_events
    report["audit_events_before"] = audit_cutoff.isoformat()
    report["deleted_idempotency_keys"] = keys
    lines.append(
        f"Deleted {_count(audit_events, 'audit event')} recorded before "
        f"{audit_cutoff:%Y-%m-%d %H:%M} UTC (M2M_AUDIT_RETENTION_DAYS) and "
        f"{_count(keys, 'idempotency key')} older than 24 hours."
    )
    lines.append(
        f"Deleted {_count(events, 'event')} that occurred before "
        f"{events_cutoff:%Y-%m-%d %H:%M} UTC (M2M_EVENT_RETENTION_DAYS), and "
        f"{_count(messages, 'settled subscription message')} queued before then."
    )
    if as_json:
        print_json(report)
    else:
        for line in lines:
            console.print(line, highlight=False)


@requests_app.command("purge")
def requests_purge(
    older_than: Annotated[
        int,
        typer.Option("--older-than", min=1, help="Days since the request finished."),
    ],
    as_json: bool = JsonOption,
) -> None:
    """Delete requests finished more than N days ago whose callbacks are settled, with their
    items, callback messages and attempts. SIM state history is kept. Their TrackingNumbers
    then answer 404. Like `m2m admin purge`, also deletes audit events past
    M2M_AUDIT_RETENTION_DAYS and idempotency keys older than 24 hours."""
    _purge(older_than, as_json)


@app.command("purge")
def purge(
    requests_older_than: Annotated[
        int | None,
        typer.Option(
            "--requests-older-than",
            min=1,
            help="Also delete settled requests finished more than N days ago.",
        ),
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Delete what is past its retention: audit events older than M2M_AUDIT_RETENTION_DAYS
    (default 365), events older than M2M_EVENT_RETENTION_DAYS (30), idempotency keys older than
    24 hours, SIMs' hourly usage older than M2M_USAGE_HOURLY_RETENTION_DAYS (when set) and, with
    --requests-older-than,
    settled requests (as `m2m admin requests purge`). Run it from a daily timer."""
    _purge(requests_older_than, as_json)


@events_app.command("purge")
def events_purge(
    older_than: Annotated[
        int | None,
        typer.Option(
            "--older-than",
            min=1,
            help="Days since the event occurred (default: M2M_EVENT_RETENTION_DAYS, 30).",
        ),
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Delete events that occurred more than N days ago, every account's. Consumers' cursors stay
    valid: one older than the purge reads on from the oldest event kept."""
    days = older_than if older_than is not None else load_settings().event_retention_days
    cutoff = clock.now() - timedelta(days=days)
    deleted = _purge_in_batches(
        lambda conn, size: retention.purge_events(conn, cutoff, size), EVENT_PURGE_BATCH
    )
    messages = _purge_in_batches(
        lambda conn, size: retention.purge_event_messages(conn, cutoff, size), EVENT_PURGE_BATCH
    )
    if as_json:
        print_json(
            {
                "deleted_events": deleted,
                "deleted_event_messages": messages,
                "occurred_before": cutoff.isoformat(),
            }
        )
    else:
        console.print(f"Deleted {deleted} events that occurred before {cutoff:%Y-%m-%d %H:%M} UTC.")
        if messages:
            console.print(f"Deleted {messages} settled subscription messages queued before then.")
