"""Alembic environment: runs migrations on the async engine the caller hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - we always pass a connection (see migrate.py)
    raise RuntimeError("run migrations through chatrelay.store.migrate.upgrade()")

context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
