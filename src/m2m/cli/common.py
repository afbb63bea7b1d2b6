"""What every CLI command shares: settings, the engine, output as tables or JSON, clean errors.

The client commands use this module too, so the server side (settings, SQLAlchemy, migrations)
is imported by the functions that need it, not here: see ``m2m.cli.main``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from m2m.settings import Settings
    from m2m.storage.migrate import Migration

console = Console()
err_console = Console(stderr=True)

JsonOption = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    from pydantic import ValidationError

    from m2m.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        problems = "; ".join(
            f"M2M_{'_'.join(str(p) for p in e['loc']).upper()}: "
            + e["msg"].removeprefix("Value error, ")  # pydantic's prefix to our validators' words
            for e in error.errors()
        )
        raise fail(f"invalid settings: {problems}") from error


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected failures into one red line and exit code 1, never a traceback."""
    from m2m.errors import M2MError
    from m2m.settings import ConfigurationError

    try:
        yield
    except M2MError as error:
        raise fail(error.message) from error
    except ConfigurationError as error:
        raise fail(str(error)) from error


def shown_url(engine: Engine) -> str:
    """The engine's database URL fit for printing: its password (if any) masked."""
    return engine.url.render_as_string(hide_password=True)


def migrated_database(settings: Settings, *, create: bool = True) -> tuple[Engine, Migration]:
    """The settings' database, migrated; with the revisions it went from and to.

    A database that cannot be used (a folder that cannot be made, a server that does not answer,
    a schema from a newer release) ends the command with one line saying what to change.
    ``create=False`` refuses a SQLite file that does not exist yet: the admin commands and a
    standalone worker must act on the server's database, not on an empty one made wherever
    they were started.
    """
    from m2m.storage.migrate import upgrade

    with user_errors():
        if not create:
            _refuse_missing_sqlite_file(settings)
        engine = _make_engine(settings)
        try:
            with _database_problems(settings, engine):
                return engine, upgrade(engine)
        except BaseException:
            engine.dispose()
            raise


def migrated_engine(settings: Settings, *, create: bool = True) -> Engine:
    engine, _ = migrated_database(settings, create=create)
    return engine


def _setting_that_chose(settings: Settings) -> str:
    """The variable that chose the database: the URL, or the folder of the default SQLite file."""
    return "M2M_DATABASE_URL" if settings.database_url else "M2M_DATA_DIR"


def _settings_choosing_another(settings: Settings) -> str:
    """The variables that would choose another database: the folder too if the URL is unset."""
    return "M2M_DATABASE_URL" if settings.database_url else "M2M_DATABASE_URL (or M2M_DATA_DIR)"


def _sqlite_file(settings: Settings) -> Path | None:
    """The settings' SQLite database file; None for PostgreSQL and for in-memory databases."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.effective_database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.query.get("uri"):  # a "file:" URI with options: left to SQLite
        return None
    return Path(str(url.database))


def _refuse_missing_sqlite_file(settings: Settings) -> None:
    from m2m.settings import ConfigurationError

    path = _sqlite_file(settings)
    if path is not None and not path.exists():
        settings_names = _settings_choosing_another(settings)
        raise ConfigurationError(
            f"there is no database at {path.absolute()}: point {settings_names} at the server's "
            "database, or create this one with `m2m db upgrade`."
        )


def _make_engine(settings: Settings) -> Engine:
    from m2m.settings import ConfigurationError

    try:
        return settings.make_engine()
    except OSError as error:  # it makes the SQLite file's folder
        reason = _FOLDER_PROBLEMS.get(type(error), error.strerror)
        raise ConfigurationError(
            f"cannot create the folder {error.filename} for the SQLite database: {reason}. "
            f"Set {_setting_that_chose(settings)} to a place this user can write."
        ) from error


# What os.mkdir's terse answers mean for the folder it was asked to make.
_FOLDER_PROBLEMS: dict[type[OSError], str] = {
    FileExistsError: "a file has that name",
    NotADirectoryError: "a part of its path is a file",
}


@contextmanager
def _database_problems(settings: Settings, engine: Engine) -> Iterator[None]:
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError

    from m2m.settings import ConfigurationError

    where = shown_url(engine)
    try:
        yield
    except DBAPIError as error:
        path = _sqlite_file(settings)
        check = (
            f"Check that this user can write {path.absolute()} and its folder, "
            f"or set {_setting_that_chose(settings)}."
            if path
            else "Check M2M_DATABASE_URL: the server, the database, the role and its rights."
        )
        reason = _sentence(str(error.orig), engine.url.password)
        raise ConfigurationError(f"cannot use the database at {where}: {reason} {check}") from error
    except CommandError as error:  # typically a revision unknown to this release
        raise ConfigurationError(
            f"cannot migrate the database at {where}: {error}. If a newer version of m2m "
            "migrated it, run that version."
        ) from error


def _sentence(message: str, password: str | None) -> str:
    """A driver's message as one line ending a sentence, without the password should it quote
    the URL."""
    text = " ".join(message.split())
    if password:
        text = text.replace(password, "***")
    return text if text.endswith((".", "?", "!")) else text + "."


def _json_value(value: Any) -> Any:
    # ISO 8601 with its "T", as the API writes timestamps: str() of a datetime uses a space,
    # which many parsers (JavaScript's Date, jq's fromdateiso8601) refuse.
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=_json_value) + "\n")


def print_json_line(value: Any) -> None:
    """One JSON document per line (for streams), flushed at once."""
    sys.stdout.write(json.dumps(value, default=_json_value) + "\n")
    sys.stdout.flush()


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        # Text, not str: a str cell is parsed as Rich markup ("[/red]" in a name would crash).
        table.add_row(*(Text(_cell(v)) for v in row))
    if console.is_terminal:
        console.print(table)  # fitted to the terminal, as a person reads it
        return
    # Piped or redirected: Rich would assume 80 columns and wrap cells; print every cell whole.
    natural = Measurement.get(console, console.options.update_width(1_000_000), table).maximum
    Console(width=max(natural, 1)).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):  # to the second, with its "T": as every table shows times
        return value.isoformat(timespec="seconds")
    return str(value)
