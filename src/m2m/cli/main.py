"""The ``m2m`` command."""

from __future__ import annotations

import typer

from m2m import __version__
from m2m.cli import admin, callback, sim, token
from m2m.cli.common import console, load_settings, migrated_engine, shown_url
from m2m.cli.listen import listen
from m2m.cli.serve import serve
from m2m.cli.worker import worker

app = typer.Typer(
    help="M2M SIM-management API: server, worker, administration, and a client of the API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin.app, name="admin")
app.command("serve")(serve)
app.command("worker")(worker)
app.command("listen")(listen)
app.add_typer(sim.app, name="sim")
app.add_typer(callback.app, name="callback")
app.add_typer(token.app, name="token")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (serve does it on start, too)."""
    settings = load_settings()
    engine = migrated_engine(settings)
    engine.dispose()
    console.print(
        f"Database at {shown_url(engine)} is up to date.", highlight=False, soft_wrap=True
    )


@app.command("version")
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    app()
