"""Run the Alembic migrations shipped inside the package, on SQLite and Postgres alike."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_MIGRATIONS = Path(__file__).parent / "migrations"

MIGRATION_LOCK_KEY = 0x6368_6174_7265_6C61
"""The Postgres advisory lock every `upgrade()` holds while it migrates: `b"chatrela"` read as
a big-endian bigint, 7163082360096124001. It is one lock per database (whatever the schema),
so instances starting together migrate one after another and all but the first find the
schema at head. In `pg_locks` it is `locktype = 'advisory'`, `classid = 1667785076`,
`objid = 1919249505`, `objsubid = 1`."""


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(_config(connection), revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to `revision` (idempotent, and safe to run from several processes
    at once).

    On Postgres, all the migrations run in one transaction (Alembic joins the one begun here)
    whose first statement takes the advisory lock `MIGRATION_LOCK_KEY`; its commit or
    rollback releases it, even if the process dies. Without it, instances migrating one new
    database together all ran the first migration and all but one failed on a duplicate
    table. A transaction-level lock rather than `pg_advisory_lock`: nothing can leave it held
    on a pooled connection.
    """
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        await conn.run_sync(_upgrade, revision)
