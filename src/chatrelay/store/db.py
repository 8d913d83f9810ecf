"""Engine and sessions. Every unit of work opens its own short session (see `session()`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def create_engine(
    database_url: str,
    *,
    schema: str | None = None,
    pool_size: int = 5,
    max_overflow: int = 10,
    pool_timeout: float = 30.0,
) -> AsyncEngine:
    """Build the async engine. `schema` pins Postgres' search_path (tests use one per test)."""
    connect_args: dict[str, Any] = {}
    if database_url.startswith("sqlite"):
        # Concurrent turns write from several tasks; wait for the lock instead of failing.
        connect_args["timeout"] = 30
    elif schema is not None:
        connect_args["server_settings"] = {"search_path": schema}
    # A server connection can drop while pooled; a file cannot (and with aiosqlite every
    # ping is a round trip through its thread).
    pre_ping = not database_url.startswith("sqlite")
    engine = create_async_engine(
        database_url,
        connect_args=connect_args,
        pool_pre_ping=pre_ping,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
    )
    if database_url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # ON DELETE CASCADE needs it
    cursor.execute("PRAGMA journal_mode=WAL")  # readers don't block the finalizer's write
    cursor.close()


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One session, one transaction: committed on success, rolled back on any error."""
    async with factory() as db, db.begin():
        yield db


async def ping(engine: AsyncEngine) -> None:
    """Raise if the database does not answer a trivial query."""
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))
