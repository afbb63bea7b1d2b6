"""``m2m db``: the database schema."""

from __future__ import annotations

import typer

from m2m.cli.common import console, load_settings, migrated_engine, shown_url

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (serve does it on start, too)."""
    settings = load_settings()
    engine = migrated_engine(settings)
    engine.dispose()
    console.print(
        f"Database at {shown_url(engine)} is up to date.", highlight=False, soft_wrap=True
    )
