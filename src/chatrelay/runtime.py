"""Everything a running chatrelay needs, built without any web framework: the database, the
model adapter with its tools, the turn service and what it depends on.

The HTTP server enters `open_runtime()` in its lifespan; a CLI command, a worker or another
transport can do the same. Nothing here is created at import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from mcp.server.mcpserver import MCPServer
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.agents import AgentsTurnModel
from chatrelay.agents import ModelProvider as ModelProvider  # re-exported for the edges
from chatrelay.agents.assistant import open_turn_model
from chatrelay.chatkit import ChatKitProtocol
from chatrelay.config import Settings
from chatrelay.store import create_engine, sessionmaker, upgrade
from chatrelay.tools.todo import acting_as, build_todo_server
from chatrelay.turns import (
    InProcessTurnBuffer,
    Metrics,
    TurnConfig,
    TurnRegistry,
    TurnService,
    UserLimits,
)
from chatrelay.turns.sql_store import SqlTurnStore


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    turns: TurnService
    registry: TurnRegistry
    limits: UserLimits
    metrics: Metrics
    model: AgentsTurnModel
    todo: MCPServer
    """The todo MCP server (the agent reaches it in-process; `/mcp` serves it over HTTP)."""
    chatkit: ChatKitProtocol


def turn_config(settings: Settings) -> TurnConfig:
    return TurnConfig(
        timeout_seconds=settings.turn_timeout_seconds,
        lease_seconds=settings.turn_lease_seconds,
        history_limit=settings.history_limit,
        flush_interval=settings.sse_flush_interval_seconds,
        default_model=settings.model,
        model_allowlist=tuple(settings.model_allowlist),
    )


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    provider: ModelProvider | None = None,
    database_schema: str | None = None,
) -> AsyncIterator[Runtime]:
    """Build the runtime; on exit, running turns get `SHUTDOWN_GRACE_SECONDS` to finish (then
    they are stopped and saved) before the tools and the database close.

    `provider` and `database_schema` are seams for tests.
    """
    async with AsyncExitStack() as stack:
        engine = create_engine(
            settings.database_url,
            schema=database_schema,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            pool_timeout=settings.database_pool_timeout_seconds,
        )
        stack.push_async_callback(engine.dispose)
        if settings.is_sqlite:
            await upgrade(engine)  # the embedded database needs no separate `migrate` step
        sessions = sessionmaker(engine)
        todo = build_todo_server(sessions)
        model = await stack.enter_async_context(
            open_turn_model(settings, todo, acting_as, provider)
        )
        limits = UserLimits(
            settings.rate_limit, settings.rate_limit_storage, settings.max_streams_per_user
        )
        stack.callback(limits.close)
        registry = TurnRegistry(keep_finished_seconds=settings.resume_seconds)
        # Registered last, so it runs first: turns finish while their tools still work.
        stack.push_async_callback(registry.shutdown, settings.shutdown_grace_seconds)
        metrics = Metrics(open_streams=limits.open_streams)
        turns = TurnService(
            store=SqlTurnStore(sessions),
            model=model,
            registry=registry,
            buffer=InProcessTurnBuffer(registry),
            limits=limits,
            config=turn_config(settings),
            metrics=metrics,
        )
        yield Runtime(
            settings=settings,
            engine=engine,
            sessions=sessions,
            turns=turns,
            registry=registry,
            limits=limits,
            metrics=metrics,
            model=model,
            todo=todo,
            chatkit=ChatKitProtocol(turns, sessions, settings.model),
        )
