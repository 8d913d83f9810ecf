"""Run the Alembic migrations shipped inside the package, on SQLite and Postgres alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
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


@dataclass(frozen=True)
class Revisions:
    """Where the database's schema is, and where this package's migrations end."""

    current: str | None
    """`None`: never migrated (no `alembic_version` table yet, as in a new database)."""
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def head_revision() -> str:
    """The last migration shipped in this package. Reads the migration scripts: blocking."""
    head = ScriptDirectory(str(_MIGRATIONS)).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise RuntimeError(f"no migrations in {_MIGRATIONS}")
    return head


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def revisions(engine: AsyncEngine, head: str) -> Revisions:
    """Read the database's revision (one catalog lookup and one select, no migration scripts).

    Raises whatever the driver raises when the database does not answer.
    """
    async with engine.connect() as conn:
        current = await conn.run_sync(_current_revision)
    return Revisions(current=current, head=head)


class SchemaStatus:
    """Whether the database schema is at `head`, as a readiness probe asks it.

    Once seen at head it is never read again (nothing migrates a running database backwards),
    so from then on a probe costs no more than its ping.
    """

    def __init__(self, engine: AsyncEngine, head: str) -> None:
        self._engine = engine
        self.head = head
        self._at_head = False

    async def behind(self) -> Revisions | None:
        """`None` at head, else where the schema is. Raises if the database does not answer."""
        if self._at_head:
            return None
        found = await revisions(self._engine, self.head)
        self._at_head = found.at_head
        return None if found.at_head else found
