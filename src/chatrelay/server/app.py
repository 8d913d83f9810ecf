"""The app factory. The runtime and the MCP transport are made in the lifespan, never at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from chatrelay import __version__
from chatrelay.attachments import ROUTE_PREFIX
from chatrelay.config import Settings, find_env_file, load_settings
from chatrelay.runtime import ModelProvider, open_runtime
from chatrelay.server.errors import install_error_handlers
from chatrelay.server.mcp_http import MCP_PATH, AuthenticatedMCP, streamable_http
from chatrelay.server.middleware import BodyLimitMiddleware, RequestIdMiddleware
from chatrelay.server.routes import (
    ai_sdk,
    attachments,
    chat,
    chatkit,
    conversations,
    dev_login,
    health,
    history,
    mcp_metadata,
    websocket,
)
from chatrelay.server.routes.ui import ui_router
from chatrelay.telemetry import Telemetry, TracingMiddleware
from chatrelay.transcripts.middleware import TranscriptMiddleware

logger = logging.getLogger("chatrelay.server")


class _MCPEndpoint:
    """`/mcp` is routed at build time; its transport exists once the lifespan has started.

    An object, not a function: Starlette's `Route` treats a plain function as a GET-only
    request handler, but passes every method to an ASGI app.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport: ASGIApp = scope["app"].state.mcp_http
        await transport(scope, receive, send)


def _include_routes(app: FastAPI, settings: Settings) -> None:
    routers = (
        health,
        chat,
        chatkit,
        ai_sdk,
        attachments,
        conversations,
        history,
        mcp_metadata,
        websocket,
    )
    for router in routers:
        app.include_router(router.router)
    if settings.dev_login:
        app.include_router(dev_login.router)
    if settings.serve_ui:
        app.include_router(ui_router(settings))
    app.router.routes.append(Route(MCP_PATH, endpoint=_MCPEndpoint()))


def create_app(
    settings: Settings | None = None,
    *,
    provider: ModelProvider | None = None,
    database_schema: str | None = None,
    telemetry: Telemetry | None = None,
) -> FastAPI:
    """Build the ASGI app. `provider` and `database_schema` are seams for tests; so is
    `telemetry` (else OpenTelemetry as the `OTEL_*` variables say: none when unset)."""
    settings = settings or load_settings(find_env_file())
    if telemetry is None:
        telemetry = Telemetry.from_environment()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if telemetry is not None:  # last out: the spans of the drain's turns are exported
                stack.push_async_callback(asyncio.to_thread, telemetry.shutdown)
            runtime = await stack.enter_async_context(
                open_runtime(
                    settings,
                    provider=provider,
                    database_schema=database_schema,
                    telemetry=telemetry,
                )
            )
            transport = await stack.enter_async_context(streamable_http(runtime.todo))
            app.state.runtime = runtime
            app.state.mcp_http = AuthenticatedMCP(runtime.verifier, transport)
            logger.info("chatrelay %s ready (model=%s)", __version__, settings.model)
            yield

    app = FastAPI(
        title="chatrelay",
        version=__version__,
        summary="A streaming-first, ChatKit-compatible chat server",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    _include_routes(app, settings)
    _add_middleware(app, settings, telemetry)
    return app


def _add_middleware(app: FastAPI, settings: Settings, telemetry: Telemetry | None) -> None:
    # Added first, so it is inside CORS: a 413 still carries the CORS headers a browser needs.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        own_limit_prefix=ROUTE_PREFIX + "/",  # uploads: ATTACHMENT_MAX_BYTES, as they stream
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "OPTIONS"],
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
    if telemetry is not None:  # outside the request id: its span sees the 500 it answers
        app.add_middleware(TracingMiddleware, tracer=telemetry.tracer)
    if settings.transcript_dir is not None:  # outermost: it sees what the client gets
        app.add_middleware(TranscriptMiddleware, directory=settings.transcript_dir)
