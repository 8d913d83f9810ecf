"""The schema: migrated once however many instances start together."""

from __future__ import annotations

import asyncio
import sys

import pytest
import sqlalchemy as sa

from chatrelay.store import upgrade
from tests.conftest import Database

HEAD = "0004"

# One instance's `upgrade()`, held at a barrier (a line on stdin) once it is connected, so
# that all of them migrate at the same moment.
_UPGRADE_AT_GO = """
import asyncio, sys
from chatrelay.store import create_engine, ping, upgrade

async def main() -> None:
    engine = create_engine(sys.argv[1], schema=sys.argv[2])
    try:
        await ping(engine)
        print("ready", flush=True)
        sys.stdin.readline()
        await upgrade(engine)
    finally:
        await engine.dispose()

asyncio.run(main())
"""


async def stamped_revisions(database: Database) -> list[str]:
    """The rows of `alembic_version` (exactly one once migrated)."""
    engine = database.engine()
    try:
        async with engine.connect() as conn:
            result = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            return [row[0] for row in result]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("empty_database", ["postgres"], indirect=True)
async def test_concurrent_upgrades_of_a_fresh_database_migrate_it_once(
    empty_database: Database,
) -> None:
    """Regression: several `upgrade()`s at once on one new database raced; without the
    advisory lock they block each other on the uncommitted `alembic_version` table."""
    engines = [empty_database.engine() for _ in range(4)]
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(upgrade(engine) for engine in engines))
    finally:
        await asyncio.gather(*(engine.dispose() for engine in engines))
    assert await stamped_revisions(empty_database) == [HEAD]


@pytest.mark.slow
@pytest.mark.parametrize("empty_database", ["postgres"], indirect=True)
async def test_processes_migrating_a_fresh_database_together_migrate_it_once(
    empty_database: Database,
) -> None:
    """Regression: instances started together each ran the first migration on a new
    database, and all but one failed on a duplicate table (or `alembic_version` row)."""
    assert empty_database.schema is not None
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _UPGRADE_AT_GO,
            empty_database.url,
            empty_database.schema,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    async with asyncio.timeout(30):
        for process in processes:
            assert process.stdout is not None
            assert await process.stdout.readline() == b"ready\n"
        outcomes = await asyncio.gather(*(process.communicate(b"go\n") for process in processes))
    failures = [
        err.decode()
        for process, (_, err) in zip(processes, outcomes, strict=True)
        if process.returncode != 0
    ]
    assert failures == []
    assert await stamped_revisions(empty_database) == [HEAD]
