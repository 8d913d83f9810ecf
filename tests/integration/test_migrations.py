"""The schema: migrated on start (once, however many instances start together), or checked
with MIGRATE_ON_START=false; `/readyz` says 503 while it is behind."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from chatrelay.runtime import SchemaBehind, open_runtime
from chatrelay.server import create_app
from chatrelay.store import Revisions, upgrade
from tests.conftest import Database, auth, client_for, make_settings, running
from tests.fakes.tcp import LateDatabase
from tests.integration.helpers import context_of, stored_messages

HEAD = "0006"

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


async def migrate(database: Database, revision: str) -> None:
    engine = database.engine()
    try:
        await upgrade(engine, revision)
    finally:
        await engine.dispose()


@contextmanager
def statements_on(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements `engine` runs inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def stamped_revisions(database: Database) -> list[str]:
    """The rows of `alembic_version` (exactly one once migrated)."""
    engine = database.engine()
    try:
        async with engine.connect() as conn:
            result = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            return [row[0] for row in result]
    finally:
        await engine.dispose()


async def until_at_head(database: Database) -> None:
    for _ in range(300):
        with suppress(sa.exc.DBAPIError):  # no alembic_version table yet
            if await stamped_revisions(database) == [HEAD]:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the database was not migrated")


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


async def test_serve_on_a_new_database_migrates_it_and_a_turn_is_saved(
    empty_database: Database,
) -> None:
    """Regression: serve migrated only SQLite on start; on a new Postgres database every turn
    ran the model, then answered 503 ("the reply could not be saved")."""
    app = create_app(make_settings(empty_database), database_schema=empty_database.schema)
    async with running(app), client_for(app) as client:
        reply = await client.post("/api/alice/chat", json={"message": "hello"}, headers=auth())
        ready = await client.get("/readyz")
        assert reply.status_code == 200, reply.text
        stored = await stored_messages(app, reply.json()["conversation_id"])
    assert [m.role for m in stored] == ["user", "assistant"]
    assert ready.json() == {"status": "ok"}
    assert await stamped_revisions(empty_database) == [HEAD]


async def test_serve_on_an_older_database_migrates_it_to_head(empty_database: Database) -> None:
    await migrate(empty_database, "0003")
    app = create_app(make_settings(empty_database), database_schema=empty_database.schema)
    async with running(app), client_for(app) as client:
        reply = await client.post("/api/alice/chat", json={"message": "hello"}, headers=auth())
    assert reply.status_code == 200, reply.text
    assert await stamped_revisions(empty_database) == [HEAD]


@pytest.mark.parametrize("empty_database", ["postgres"], indirect=True)
async def test_instances_starting_together_on_a_new_database_migrate_it_once(
    empty_database: Database,
) -> None:
    settings = make_settings(empty_database)

    async def start_and_stop() -> None:
        async with open_runtime(settings, database_schema=empty_database.schema):
            pass

    async with asyncio.timeout(60):
        await asyncio.gather(*(start_and_stop() for _ in range(4)))
    assert await stamped_revisions(empty_database) == [HEAD]


@pytest.mark.parametrize("revision", [None, "0003"])
async def test_without_migrate_on_start_a_schema_behind_head_refuses_to_start(
    empty_database: Database, revision: str | None
) -> None:
    if revision is not None:
        await migrate(empty_database, revision)
    settings = make_settings(empty_database, migrate_on_start=False)
    with pytest.raises(SchemaBehind, match="run `chatrelay migrate`") as refused:
        async with open_runtime(settings, database_schema=empty_database.schema):
            pass
    assert refused.value.revisions == Revisions(current=revision, head=HEAD)
    assert "\n" not in str(refused.value)

    await migrate(empty_database, "head")  # what `chatrelay migrate` does
    async with open_runtime(settings, database_schema=empty_database.schema) as runtime:
        assert await runtime.schema.behind() is None


@pytest.mark.parametrize("empty_database", ["postgres"], indirect=True)
async def test_readyz_is_503_while_the_schema_is_behind_and_reads_it_once_at_head(
    empty_database: Database,
) -> None:
    """Regression: /readyz said ok on a database without tables, where every turn failed.

    Without MIGRATE_ON_START, a database unreachable at start-up cannot be checked then, so
    the server starts; its probe then tells unreachable, behind, and ready apart."""
    late = LateDatabase(empty_database.url)
    settings = make_settings(empty_database, database_url=late.url, migrate_on_start=False)
    app = create_app(settings, database_schema=empty_database.schema)
    try:
        async with running(app), client_for(app) as client:
            down = await client.get("/readyz")
            await late.start()
            behind = await client.get("/readyz")
            await migrate(empty_database, "head")  # an operator runs `chatrelay migrate`
            ready = await client.get("/readyz")
            with statements_on(context_of(app).engine) as statements:
                again = await client.get("/readyz")
    finally:
        await late.close()
    assert (down.status_code, down.json()["detail"]) == (503, "database unreachable")
    assert behind.status_code == 503 and behind.headers["Retry-After"] == "1"
    assert behind.json() == {
        "status": "unavailable",
        "detail": "database schema behind",
        "revision": None,
        "head": HEAD,
    }
    assert (ready.status_code, again.status_code) == (200, 200)
    assert statements == ["SELECT 1"]  # seen at head once: from then on, only the ping


@pytest.mark.parametrize("empty_database", ["postgres"], indirect=True)
async def test_a_database_unreachable_at_start_is_migrated_once_it_answers(
    empty_database: Database,
) -> None:
    late = LateDatabase(empty_database.url)
    settings = make_settings(empty_database, database_url=late.url)
    app = create_app(settings, database_schema=empty_database.schema)
    try:
        async with running(app), client_for(app) as client:
            down = await client.get("/readyz")
            await late.start()
            await until_at_head(empty_database)  # the first retry comes a second after start
            ready = await client.get("/readyz")
            reply = await client.post("/api/alice/chat", json={"message": "hi"}, headers=auth())
    finally:
        await late.close()
    assert (down.status_code, ready.status_code) == (503, 200)
    assert reply.status_code == 200, reply.text
