"""What every CLI command shares: settings, the engine, output as tables or JSON, clean errors.

The client commands use this module too, so the server side (settings, SQLAlchemy, migrations)
is imported by the functions that need it, not here: see ``m2m.cli.main``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, time
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
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
            f"M2M_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in error.errors()
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


def migrated_database(settings: Settings) -> tuple[Engine, Migration]:
    """The settings' database, migrated; with the revisions it went from and to."""
    from m2m.storage.migrate import upgrade

    engine = settings.make_engine()
    return engine, upgrade(engine)


def migrated_engine(settings: Settings) -> Engine:
    engine, _ = migrated_database(settings)
    return engine


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
        table.add_row(*(Text("" if v is None else str(v)) for v in row))
    console.print(table)
