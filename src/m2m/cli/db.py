"""``m2m db``: the database schema."""

from __future__ import annotations

import typer

from m2m.cli.common import console, load_settings, migrated_database, shown_url

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (serve does it on start, too)."""
    settings = load_settings()
    engine, migration = migrated_database(settings)
    engine.dispose()
    where = shown_url(engine)
    if not migration.changed:
        said = f"Database at {where} is up to date (revision {migration.after})."
    elif migration.before is None:
        said = f"Created the schema of the database at {where} (revision {migration.after})."
    else:
        said = (
            f"Migrated the database at {where} "
            f"from revision {migration.before} to {migration.after}."
        )
    console.print(said, highlight=False, soft_wrap=True)
