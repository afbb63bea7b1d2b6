"""Alembic environment: always run through ``m2m.storage.migrate`` with a live connection."""

from __future__ import annotations

from alembic import context

from m2m.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
