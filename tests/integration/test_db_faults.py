"""Database faults: a connection killed while the finalizer commits, and recovery."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import TimeoutError as PoolTimeout

from chatrelay.store import create_engine
from tests.conftest import AppFactory, Database, auth, client_for
from tests.integration.helpers import SSE, context_of, stored_messages
from tests.sse import parse_sse, validate_chatkit


def _kill_connection_on_insert(engine: Any, fired: list[str], *, every: bool = False) -> None:
    """The first (or `every`) INSERT INTO messages terminates its own Postgres backend first."""

    def before_cursor_execute(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith("INSERT INTO MESSAGES"):
            return
        if fired and not every:
            return
        fired.append(statement)
        try:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        except Exception:  # the backend is gone: exactly what we wanted
            pass

    event.listen(engine.sync_engine, "before_cursor_execute", before_cursor_execute)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)  # pg_terminate_backend
async def test_a_connection_killed_mid_commit_is_retried(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = await app_factory()
    fired: list[str] = []
    _kill_connection_on_insert(context_of(app).engine, fired)
    async with client_for(app) as client:
        reply = await client.post(
            "/api/alice/chat", json={"message": "survive this"}, headers=auth()
        )
        after = await client.post("/api/alice/chat", json={"message": "and this"}, headers=auth())

    assert fired, "the backend was never killed"
    assert reply.status_code == 200
    assert after.status_code == 200
    assert any("commit attempt 1" in r.getMessage() for r in caplog.records)
    stored = await stored_messages(app, reply.json()["conversation_id"])
    assert [m.role for m in stored] == ["user", "assistant"]


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_commit_that_keeps_failing_is_an_error_event_with_the_correlation_id(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = await app_factory()
    fired: list[str] = []
    _kill_connection_on_insert(context_of(app).engine, fired, every=True)
    async with client_for(app) as client:
        response = await client.post(
            "/api/alice/chat",
            json={"message": "doomed"},
            headers={**auth(), **SSE, "X-Request-ID": "corr-db-1"},
        )

    frames = parse_sse(response.text)
    validate_chatkit(frames)
    assert frames[-1].type == "error"
    assert "could not be saved" in frames[-1].data["message"]
    assert "corr-db-1" in frames[-1].data["message"]
    assert len(fired) == 4  # the first attempt and three retries
    assert any(
        "could not commit" in r.getMessage() and "corr-db-1" in r.getMessage()
        for r in caplog.records
    )
    assert await stored_messages(app) == []


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_json_turn_whose_commit_keeps_failing_is_503_with_retry_after(
    app_factory: AppFactory,
) -> None:
    app = await app_factory()
    fired: list[str] = []
    _kill_connection_on_insert(context_of(app).engine, fired, every=True)
    async with client_for(app) as client:
        response = await client.post(
            "/api/alice/chat",
            json={"message": "doomed"},
            headers={**auth(), "X-Request-ID": "corr-db-2"},
        )

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["correlation_id"] == "corr-db-2"
    assert len(fired) == 4
    assert await stored_messages(app) == []


async def test_an_exhausted_connection_pool_is_503_retry_after(app_factory: AppFactory) -> None:
    """Regression: SQLAlchemy's pool timeout (every connection busy for 30 s, seen at 2,000
    concurrent follow-ups) is not a DBAPIError, so it was answered 500."""
    app = await app_factory()
    async with client_for(app) as client:
        first = await client.post("/api/alice/chat", json={"message": "one"}, headers=auth())
        conversation_id = first.json()["conversation_id"]

        def no_connection_free(*_args: Any) -> None:
            raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached")

        pool = context_of(app).engine.sync_engine.pool
        event.listen(pool, "checkout", no_connection_free)
        try:
            busy = await client.post(
                "/api/alice/chat",
                json={"message": "two", "conversation_id": conversation_id},
                headers={**auth(), "X-Request-ID": "corr-busy"},
            )
        finally:
            event.remove(pool, "checkout", no_connection_free)
        after = await client.post(
            "/api/alice/chat",
            json={"message": "three", "conversation_id": conversation_id},
            headers=auth(),
        )

    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == "1"
    assert busy.json() == {"detail": "server busy, please retry", "correlation_id": "corr-busy"}
    assert after.status_code == 200
    assert len(await stored_messages(app, conversation_id)) == 4


async def test_the_pool_settings_bound_the_wait_for_a_connection(app_factory: AppFactory) -> None:
    app = await app_factory(
        database_pool_size=1, database_max_overflow=0, database_pool_timeout_seconds=0.2
    )
    async with client_for(app) as client:
        first = await client.post("/api/alice/chat", json={"message": "one"}, headers=auth())
        conversation_id = first.json()["conversation_id"]
        engine = context_of(app).engine
        async with engine.connect() as held:  # the pool's only connection
            await held.exec_driver_sql("SELECT 1")
            busy = await client.post(
                "/api/alice/chat",
                json={"message": "two", "conversation_id": conversation_id},
                headers=auth(),
            )
        after = await client.post(
            "/api/alice/chat",
            json={"message": "three", "conversation_id": conversation_id},
            headers=auth(),
        )

    assert engine.pool.size() == 1
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert after.status_code == 200


@pytest.mark.parametrize("database", ["postgres"], indirect=True)  # LOCK TABLE
async def test_commits_that_wait_out_the_pool_timeout_are_retried_not_lost(
    app_factory: AppFactory, database: Database
) -> None:
    """Regression: with 2 pooled connections and `messages` locked for 4 s, 38 of 40 replies
    the model had produced were dropped (the pool timeout was not retried) and their 503s had
    no Retry-After. Now every reply is committed once the lock goes."""
    app = await app_factory(
        database_pool_size=2,
        database_max_overflow=0,
        database_pool_timeout_seconds=1,
        rate_limit="1000/minute",
    )
    locker = create_engine(database.url, schema=database.schema)
    try:
        async with client_for(app) as client, locker.connect() as conn:
            transaction = await conn.begin()
            await conn.exec_driver_sql("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            turns = [
                asyncio.create_task(
                    client.post("/api/alice/chat", json={"message": f"turn {n}"}, headers=auth())
                )
                for n in range(40)
            ]
            done, _ = await asyncio.wait(turns, timeout=4)
            await transaction.rollback()  # the lock goes after 4 s (or sooner if all ended)
            replies = await asyncio.gather(*turns)
    finally:
        await locker.dispose()

    assert not done, "a turn ended while its table was locked"
    assert [r.status_code for r in replies] == [200] * 40, [r.text for r in replies]
    stored = await stored_messages(app)
    assert len(stored) == 80
    assert {m.content for m in stored if m.role == "user"} == {f"turn {n}" for n in range(40)}
