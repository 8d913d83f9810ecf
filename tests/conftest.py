"""Shared fixtures: one database per test (a SQLite file or a fresh Postgres schema), the app
with its lifespan running, and an HTTP client. Every test using `app_factory` runs against
both backends."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from agents import ModelProvider
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from chatrelay.config import ENV_FILE_VARIABLE, Settings
from chatrelay.server import create_app
from chatrelay.store import create_engine, upgrade
from chatrelay.tokens import mint_token

POSTGRES_URL = os.environ.get(
    "CHATRELAY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
T = TypeVar("T")
TEST_SECRET = "test-secret-" + "x" * 60  # 64+ bytes: pyjwt warns below that for HS512


@pytest.fixture(autouse=True)
def _no_network_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing reaches OpenAI: no key, no proxies, no tracing export."""
    for name in ("OPENAI_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")
    # No developer's .env either: the CLI (in process or not) would find the checkout's.
    monkeypatch.setenv(ENV_FILE_VARIABLE, os.devnull)


@dataclass(frozen=True)
class Database:
    backend: str
    url: str
    schema: str | None

    def engine(self) -> AsyncEngine:
        """A new engine on this database (the caller disposes of it)."""
        return create_engine(self.url, schema=self.schema)


async def _postgres_schema() -> tuple[str, Callable[[], Awaitable[None]]]:
    """A new, empty Postgres schema and the coroutine function that drops it (on any loop)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        await _admin(f'CREATE SCHEMA "{schema}"')
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Postgres is required under CI=true and is unreachable: {exc}")
        pytest.skip(f"Postgres unreachable: {exc}")

    async def drop() -> None:
        await _admin(f'DROP SCHEMA "{schema}" CASCADE')

    return schema, drop


async def _admin(statement: str) -> None:
    admin = create_engine(POSTGRES_URL)
    try:
        async with admin.begin() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await admin.dispose()


def _run_apart(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` on a loop of its own in another thread: session fixtures are set up from
    inside a test's running loop, where `asyncio.run` is refused."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, work()).result()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def _postgres_test_schema() -> Iterator[str]:
    """One Postgres schema for the session, migrated once; each test truncates its tables."""
    schema, drop = _run_apart(_postgres_schema)

    async def migrate() -> None:
        engine = create_engine(POSTGRES_URL, schema=schema)
        await upgrade(engine)
        await engine.dispose()

    _run_apart(migrate)
    try:
        yield schema
    finally:
        _run_apart(drop)


async def _truncate_all(schema: str) -> None:
    engine = create_engine(POSTGRES_URL, schema=schema)
    try:
        async with engine.begin() as conn:
            tables = (
                await conn.execute(
                    sa.text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = :schema"
                        " AND tablename <> 'alembic_version'"
                    ),
                    {"schema": schema},
                )
            ).scalars()
            names = ", ".join(f'"{schema}"."{name}"' for name in tables)
            if names:
                await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A SQLite file of the test's own, or the session's Postgres schema emptied for it
    (a test that needs a schema of its own, unmigrated, uses `_postgres_schema()`)."""
    if request.param == "sqlite":
        yield Database("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'chatrelay.db'}", None)
        return
    schema: str = request.getfixturevalue("_postgres_test_schema")
    await _truncate_all(schema)
    yield Database("postgres", POSTGRES_URL, schema)


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database without a single table, as an operator's new one: a new SQLite file, or a
    Postgres schema of the test's own. `@pytest.mark.parametrize("empty_database",
    ["postgres"], indirect=True)` picks one backend."""
    if request.param == "sqlite":
        yield Database("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'chatrelay.db'}", None)
        return
    schema, drop = await _postgres_schema()
    try:
        yield Database("postgres", POSTGRES_URL, schema)
    finally:
        await drop()


def make_settings(database: Database, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database.url,
        "auth_secret": TEST_SECRET,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


AppFactory = Callable[..., Awaitable[FastAPI]]


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Run the app's lifespan in a task of its own, as a server does.

    Its task groups (the MCP transport) must be left by the task that entered them, and a
    fixture's setup and teardown may run in different tasks.
    """
    started, stop = asyncio.Event(), asyncio.Event()

    async def lifespan() -> None:
        async with app.router.lifespan_context(app):
            started.set()
            await stop.wait()

    task = asyncio.create_task(lifespan())
    ready = asyncio.create_task(started.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # start-up failed: raise its error
    try:
        yield app
    finally:
        stop.set()
        await task


@pytest.fixture
async def app_factory(database: Database, tmp_path: Path) -> AsyncIterator[AppFactory]:
    """Start apps (lifespan included) on this test's database, with attachments in a
    directory of the test's own; all are shut down at the end."""
    async with AsyncExitStack() as stack:

        async def start(provider: ModelProvider | None = None, **overrides: Any) -> FastAPI:
            overrides.setdefault("attachment_store", str(tmp_path / "attachments"))
            app = create_app(
                make_settings(database, **overrides),
                provider=provider,
                database_schema=database.schema,
            )
            return await stack.enter_async_context(running(app))

        yield start


@pytest.fixture
async def app(app_factory: AppFactory) -> FastAPI:
    return await app_factory()


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as http:
        yield http


def token_for(user_id: str, **overrides: Any) -> str:
    settings = Settings(auth_secret=TEST_SECRET, _env_file=None, **overrides)  # type: ignore[call-arg]
    return mint_token(settings, user_id)


def auth(user_id: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(user_id)}"}
