"""Alembic environment: always given a connection by openline.db.migrate, batch mode on."""

from __future__ import annotations

from alembic import context

from openline.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
