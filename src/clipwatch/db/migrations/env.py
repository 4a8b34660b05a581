"""Alembic environment. Migrations run on a connection handed in by `clipwatch.db.migrate`."""

from __future__ import annotations

from alembic import context

from clipwatch.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `clipwatch db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
