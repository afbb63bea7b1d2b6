"""The ``m2m`` command.

Its subcommands are loaded lazily: ``m2m sim get`` imports the HTTP client, not the server, and
``m2m admin …`` imports the storage layer, not the web framework. Importing every subcommand
took over a second before the first line of work, which scripts calling the CLI in a loop pay
each time. Only ``m2m --help``, which shows every subcommand's summary, loads them all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import typer
from typer.core import TyperGroup, TyperOption

from m2m import __version__

if TYPE_CHECKING:
    # The click that TyperGroup is typed with: typer vendors its own copy of click.
    from typer._click import Command, Context

# name -> "module:attribute", a Typer app or a single command function, in the order of --help.
SUBCOMMANDS = {
    "db": "m2m.cli.db:app",
    "admin": "m2m.cli.admin:app",
    "serve": "m2m.cli.serve:serve",
    "worker": "m2m.cli.worker:worker",
    "listen": "m2m.cli.listen:listen",
    "sim": "m2m.cli.sim:app",
    "callback": "m2m.cli.callback:app",
    "token": "m2m.cli.token:app",
    "audit": "m2m.cli.audit:audit",
    "events": "m2m.cli.events:app",
    "usage": "m2m.cli.usage:app",
    "sandbox": "m2m.cli.sandbox:app",
}


def _flags_show_no_type() -> None:
    """Typer 0.29 prints ``<bool>`` beside plain flags (``--wait <bool>``, ``--help <bool>``),
    which reads as if the flag took a value: a user who types ``--wait true`` gets "true" taken
    as a device. A flag shows no type, as click and earlier typers did. (A patch of typer's help
    rendering, in one place; drop it when typer renders flags so itself.)"""
    shown = TyperOption.display_type_rich

    def display_type_rich(option: TyperOption, ctx: Context) -> str | None:
        return None if option.is_flag else shown(option, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign,assignment]


_flags_show_no_type()


def load_subcommand(target: str) -> Command:
    module_name, _, attribute = target.partition(":")
    found = getattr(importlib.import_module(module_name), attribute)
    if isinstance(found, typer.Typer):
        return typer.main.get_group(found)
    single = typer.Typer(add_completion=False)
    single.command()(found)
    return typer.main.get_command(single)


class LazyGroup(TyperGroup):
    """A group whose listed subcommands are imported when first asked for (click's documented
    lazy-loading pattern)."""

    def list_commands(self, ctx: Context) -> list[str]:
        eager = [name for name in super().list_commands(ctx) if name not in SUBCOMMANDS]
        return [*eager, *SUBCOMMANDS]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in self.commands and cmd_name in SUBCOMMANDS:
            command = load_subcommand(SUBCOMMANDS[cmd_name])
            command.name = cmd_name
            self.commands[cmd_name] = command
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    cls=LazyGroup,
    help="M2M SIM-management API: server, worker, administration, and a client of the API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def root() -> None:
    # A callback keeps ``m2m`` a group while ``version`` is its only eager subcommand.
    pass


@app.command("version")
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()
