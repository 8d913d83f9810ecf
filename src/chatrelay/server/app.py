"""The app factory. Engines and clients are made in the lifespan, never at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agents import ModelProvider
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from chatrelay import __version__
from chatrelay.agents import ChatrelayModelProvider
from chatrelay.agents.assistant import build_agent, build_run_config
from chatrelay.config import Settings
from chatrelay.server.context import AppContext
from chatrelay.server.errors import install_error_handlers
from chatrelay.server.middleware import RequestIdMiddleware
from chatrelay.server.routes import chat, health
from chatrelay.server.turns import TurnRegistry
from chatrelay.store import create_engine, sessionmaker, upgrade

logger = logging.getLogger("chatrelay.server")

SHUTDOWN_GRACE_SECONDS = 10.0


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
        engine = create_engine(settings.database_url, schema=database_schema)
        if settings.is_sqlite:
            await upgrade(engine)  # the embedded database needs no separate `migrate` step
        model_provider = provider or ChatrelayModelProvider(settings)
        turns = TurnRegistry()
        app.state.context = AppContext(
            settings=settings,
            engine=engine,
            sessions=sessionmaker(engine),
            provider=model_provider,
            agent=build_agent(),
            run_config=build_run_config(settings, model_provider),
            turns=turns,
        )
        _ = settings.jwt_secret  # resolve (and warn about) a missing secret at start-up
        logger.info("chatrelay %s ready (model=%s)", __version__, settings.model)
        try:
            yield
        finally:
            await turns.shutdown(SHUTDOWN_GRACE_SECONDS)
            await model_provider.aclose()
            await engine.dispose()

    app = FastAPI(
        title="chatrelay",
        version=__version__,
        summary="A streaming-first, ChatKit-compatible chat server",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(chat.router)
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
    return app
