"""Task numbers are per user (issue 20): each user's tasks are 1, 2, ... in their own list.

Regression: ids were global, so a new user's first task was "task 5" (users saw each other's
activity in their numbers) and "complete task 1" meant somebody else's task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from mcp import Client
from mcp.types import CallToolResult
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

import chatrelay.store.migrations
from chatrelay.store import Task, create_engine, sessionmaker, transaction, upgrade
from chatrelay.store.repositories import TaskRepository
from chatrelay.tools.todo import acting_as, build_todo_server
from tests.conftest import AppFactory, Database
from tests.integration.helpers import context_of
from tests.integration.test_todo_chat import say

# -- through the tools -----------------------------------------------------------------------


@asynccontextmanager
async def todo_tools(app: FastAPI) -> AsyncIterator[Client]:
    """The todo tools in-process, as the agent calls them (the user comes from `acting_as`)."""
    async with Client(build_todo_server(context_of(app).sessions)) as client:
        yield client


async def call(client: Client, user: str, tool: str, **arguments: Any) -> CallToolResult:
    with acting_as(user):
        return await client.call_tool(tool, arguments)


async def add(client: Client, user: str, title: str) -> int:
    result = await call(client, user, "add_task", title=title)
    assert result.structured_content is not None, result
    number: int = result.structured_content["id"]
    return number


async def listed(client: Client, user: str) -> list[tuple[int, str, bool]]:
    result = await call(client, user, "list_tasks")
    assert result.structured_content is not None, result
    return [(t["id"], t["title"], t["completed"]) for t in result.structured_content["tasks"]]


async def test_each_users_tasks_are_numbered_from_1(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with todo_tools(app) as tools:
        assert [await add(tools, "alice", title) for title in ("a", "b", "c")] == [1, 2, 3]
        assert await add(tools, "bob", "x") == 1
        assert await add(tools, "alice", "d") == 4
        assert await add(tools, "bob", "y") == 2

        assert await listed(tools, "bob") == [(1, "x", False), (2, "y", False)]
        assert [number for number, *_ in await listed(tools, "alice")] == [1, 2, 3, 4]


async def test_a_new_users_first_task_is_task_1_in_the_chat(
    client: httpx.AsyncClient,
) -> None:
    for title in ("one", "two", "three", "four"):
        await say(client, f"add task {title}", user="alice")

    reply = await say(client, "add task my first", user="bob")
    assert reply["message"] == "Added task 1: my first."
    done = await say(client, "complete task 1", user="bob")
    assert done["message"] == "Marked task 1 as done: my first."
    alices = await say(client, "list pending tasks", user="alice")
    assert alices["message"].splitlines()[1] == "[ ] 1: one"


async def test_another_users_number_is_not_found_like_an_unknown_one(
    app_factory: AppFactory,
) -> None:
    app = await app_factory()
    async with todo_tools(app) as tools:
        assert await add(tools, "bob", "bob's own") == 1
        # Task 2 exists for nobody yet: the answers to bob, before alice has one.
        unknown = {
            tool: await call(tools, "bob", tool, **arguments)
            for tool, arguments in _ON_TASK_2.items()
        }
        assert [await add(tools, "alice", title) for title in ("a1", "a2")] == [1, 2]
        others = {
            tool: await call(tools, "bob", tool, **arguments)
            for tool, arguments in _ON_TASK_2.items()
        }
        completed_own = await call(tools, "bob", "complete_task", task_id=1)

        assert others == unknown
        for result in others.values():
            assert result.is_error and "task 2 not found" in str(result.content)
        assert not completed_own.is_error
        assert await listed(tools, "alice") == [(1, "a1", False), (2, "a2", False)]
        assert await listed(tools, "bob") == [(1, "bob's own", True)]


_ON_TASK_2: dict[str, dict[str, Any]] = {
    "complete_task": {"task_id": 2},
    "update_task": {"task_id": 2, "title": "taken"},
    "delete_task": {"task_id": 2},
}


async def test_a_deleted_tasks_number_is_not_given_again(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with todo_tools(app) as tools:
        assert [await add(tools, "alice", title) for title in ("a", "b", "c")] == [1, 2, 3]
        for number in (3, 1):
            assert not (await call(tools, "alice", "delete_task", task_id=number)).is_error
        assert await add(tools, "alice", "d") == 4
        assert not (await call(tools, "alice", "delete_task", task_id=2)).is_error
        assert not (await call(tools, "alice", "delete_task", task_id=4)).is_error
        assert await listed(tools, "alice") == []

        assert await add(tools, "alice", "e") == 5
        gone = await call(tools, "alice", "complete_task", task_id=3)
        assert gone.is_error and "task 3 not found" in str(gone.content)


# -- concurrent adds -------------------------------------------------------------------------


async def test_concurrent_adds_by_one_user_get_distinct_numbers(database: Database) -> None:
    """Each add in a transaction (and on a connection) of its own, all of them open at
    once before any allocates; a `max(number) + 1` gives most of them the same number."""
    users = ["alice"] * 20 + ["bob"] * 4
    engine = create_engine(
        database.url, schema=database.schema, pool_size=len(users), max_overflow=0
    )
    sessions = sessionmaker(engine)
    everyone_open = asyncio.Barrier(len(users))

    async def add_one(user: str, title: str) -> int:
        async with transaction(sessions) as db:
            await db.exec(select(sa.literal(1)))  # the transaction has begun
            await everyone_open.wait()
            task = await TaskRepository(db, user).add(title, None)
            return task.number

    try:
        await upgrade(engine)  # a SQLite file of the test's own is new (Postgres: at head)
        async with asyncio.timeout(60):
            numbers = await asyncio.gather(
                *(add_one(user, f"{user} {i}") for i, user in enumerate(users))
            )
        stored = await _stored_numbers(sessions)
    finally:
        await engine.dispose()

    given: dict[str, list[int]] = {}
    for user, number in zip(users, numbers, strict=True):
        given.setdefault(user, []).append(number)
    assert {user: sorted(got) for user, got in given.items()} == {
        "alice": list(range(1, 21)),
        "bob": [1, 2, 3, 4],
    }
    assert stored == {"alice": list(range(1, 21)), "bob": [1, 2, 3, 4]}


async def _stored_numbers(sessions: async_sessionmaker[AsyncSession]) -> dict[str, list[int]]:
    async with transaction(sessions) as db:
        rows = (await db.exec(select(Task).order_by(col(Task.number)))).all()
    numbers: dict[str, list[int]] = {}
    for task in rows:
        numbers.setdefault(task.user_id, []).append(task.number)
    return numbers


# -- the migration ---------------------------------------------------------------------------

_BEFORE = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
_OLD_ROWS = [  # (user, title), in id order; created_at runs backwards, so only ids order them
    ("alice", "a1"),
    ("bob", "b1"),
    ("alice", "a2"),
    ("alice", "deleted"),
    ("bob", "b2"),
    ("alice", "a3"),
]


async def _tasks_at_0004(database: Database) -> None:
    """The schema before numbers, with `_OLD_ROWS` in it (one of them deleted since)."""
    engine = database.engine()
    try:
        await upgrade(engine, "0004")
        async with engine.begin() as conn:
            for i, (user, title) in enumerate(_OLD_ROWS):
                created = _BEFORE - timedelta(minutes=i)
                await conn.execute(
                    sa.text(
                        "INSERT INTO tasks (user_id, title, completed, created_at, updated_at)"
                        " VALUES (:user, :title, false, :at, :at)"
                    ),
                    {"user": user, "title": title, "at": created},
                )
            await conn.execute(sa.text("DELETE FROM tasks WHERE title = 'deleted'"))
    finally:
        await engine.dispose()


async def _numbered(database: Database) -> list[tuple[str, int, str]]:
    engine = database.engine()
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT user_id, number, title FROM tasks ORDER BY id")
            )
            return [(row[0], row[1], row[2]) for row in rows]
    finally:
        await engine.dispose()


_NUMBERED = [
    ("alice", 1, "a1"),
    ("bob", 1, "b1"),
    ("alice", 2, "a2"),
    ("bob", 2, "b2"),
    ("alice", 3, "a3"),
]


async def test_the_migration_numbers_each_users_existing_tasks_in_id_order(
    empty_database: Database,
) -> None:
    await _tasks_at_0004(empty_database)
    engine = empty_database.engine()
    try:
        await upgrade(engine)
        sessions = sessionmaker(engine)
        async with transaction(sessions) as db:
            next_numbers = [
                (await TaskRepository(db, user).add("new", None)).number
                for user in ("alice", "bob", "carol")
            ]
        with pytest.raises(sa.exc.IntegrityError):  # one number names one task of a user
            async with engine.begin() as conn:
                await conn.execute(
                    sa.text(
                        "INSERT INTO tasks (user_id, number, title, completed, created_at,"
                        " updated_at) VALUES ('bob', 2, 'twin', false, :at, :at)"
                    ),
                    {"at": _BEFORE},
                )
    finally:
        await engine.dispose()

    assert (await _numbered(empty_database))[: len(_NUMBERED)] == _NUMBERED
    assert next_numbers == [4, 3, 1]  # counters start after each user's highest number


async def test_the_migration_downgrades_and_upgrades_again(empty_database: Database) -> None:
    await _tasks_at_0004(empty_database)
    engine = empty_database.engine()
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "0004")
            columns = await conn.run_sync(
                lambda sync: {c["name"] for c in sa.inspect(sync).get_columns("tasks")}
            )
        await upgrade(engine)
    finally:
        await engine.dispose()

    assert "number" not in columns
    assert await _numbered(empty_database) == _NUMBERED


def _downgrade(connection: Connection, revision: str) -> None:
    config = Config()
    location = Path(chatrelay.store.migrations.__file__).parent
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    command.downgrade(config, revision)
