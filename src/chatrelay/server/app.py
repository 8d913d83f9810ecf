"""The app factory. Engines and clients are made in the lifespan, never at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from agents import ModelProvider
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from chatrelay import __version__
from chatrelay.agents import ChatrelayModelProvider
from chatrelay.agents.assistant import build_agent, build_run_config
from chatrelay.agents.inprocess_mcp import InProcessMCPServer, function_tools
from chatrelay.config import Settings
from chatrelay.server.context import AppContext
from chatrelay.server.errors import install_error_handlers
from chatrelay.server.limits import UserLimits
from chatrelay.server.mcp_http import MCP_PATH, AuthenticatedMCP, streamable_http
from chatrelay.server.metrics import Metrics
from chatrelay.server.middleware import BodyLimitMiddleware, RequestIdMiddleware
from chatrelay.server.request_claims import RequestClaims
from chatrelay.server.routes import chat, chatkit, conversations, health
from chatrelay.server.turn_buffer import InProcessTurnBuffer
from chatrelay.server.turns import TurnRegistry
from chatrelay.store import create_engine, sessionmaker, upgrade
from chatrelay.tools.commands import confirm_todo_result, recognize_todo_command
from chatrelay.tools.todo import acting_as, build_todo_server
from chatrelay.transcripts.middleware import TranscriptMiddleware

logger = logging.getLogger("chatrelay.server")


class _MCPEndpoint:
    """`/mcp` is routed at build time; its transport exists once the lifespan has started.

    An object, not a function: Starlette's `Route` treats a plain function as a GET-only
    request handler, but passes every method to an ASGI app.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        context: AppContext = scope["app"].state.context
        await context.mcp_http(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    provider: ModelProvider | None = None,
    database_schema: str | None = None,
) -> FastAPI:
    """Build the ASGI app. `provider` and `database_schema` are seams for tests."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
            model_provider = provider or ChatrelayModelProvider(
                settings, recognizers=[recognize_todo_command], confirmers=[confirm_todo_result]
            )
            stack.push_async_callback(model_provider.aclose)
            todo = build_todo_server(sessions)
            todo_for_agent = InProcessMCPServer(todo, act_as=acting_as)
            await todo_for_agent.connect()
            stack.push_async_callback(todo_for_agent.cleanup)
            agent = build_agent()
            agent.tools = await function_tools(todo_for_agent, agent)
            todo_over_http = await stack.enter_async_context(streamable_http(todo))
            limits = UserLimits(settings)
            stack.callback(limits.close)
            turns = TurnRegistry(keep_finished_seconds=settings.resume_seconds)
            # Registered last, so it runs first: turns finish while their tools still work.
            stack.push_async_callback(turns.shutdown, settings.shutdown_grace_seconds)
            app.state.context = AppContext(
                settings=settings,
                engine=engine,
                sessions=sessions,
                provider=model_provider,
                agent=agent,
                run_config=build_run_config(settings, model_provider),
                turns=turns,
                buffer=InProcessTurnBuffer(turns),
                claims=RequestClaims(),
                limits=limits,
                metrics=Metrics(open_streams=limits.open_streams),
                mcp_http=AuthenticatedMCP(settings, todo_over_http),
                todo_mcp=todo_for_agent,
            )
            _ = settings.jwt_secret  # resolve (and warn about) a missing secret at start-up
            logger.info("chatrelay %s ready (model=%s)", __version__, settings.model)
            yield

    app = FastAPI(
        title="chatrelay",
        version=__version__,
        summary="A streaming-first, ChatKit-compatible chat server",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(chat.router)
    app.include_router(chatkit.router)
    app.include_router(conversations.router)
    app.router.routes.append(Route(MCP_PATH, endpoint=_MCPEndpoint()))
    # Added first, so it is inside CORS: a 413 still carries the CORS headers a browser needs.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Accept",
                "X-Request-ID",
                "Last-Event-ID",
            ],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(RequestIdMiddleware)
    if settings.transcript_dir is not None:  # outermost: it sees what the client gets
        app.add_middleware(TranscriptMiddleware, directory=settings.transcript_dir)
    return app
