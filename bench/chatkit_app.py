"""Server B of the bench: what a user builds with chatkit-python instead of chatrelay.

A `ChatKitServer` subclass as chatkit-python's docs write one: `respond()` loads the thread's
recent items (50, chatrelay's history limit), converts them with `simple_to_agent_input`, runs
an Agents SDK `Agent` with `Runner.run_streamed` and yields `stream_agent_response(...)`: the
golden tests' `ReferenceServer` (`tests/fakes/chatkit_reference.py`), here with a 50-item
window. The agent is the reference agent: chatrelay's
offline model, its todo recognizers and confirmers, and the reference's `add_task` tool. The
store is `bench/chatkit_store.py` (SQLite through aiosqlite). The route is the docs' one,
`server.process(body, context)` into a `StreamingResponse`, behind the same bearer-token
check as the floor, at the floor's and chatrelay's path.

    AUTH_SECRET=... CHATKIT_BENCH_DB=/tmp/chatkit.db uvicorn bench.chatkit_app:app

`OFFLINE_DELAY_SECONDS` (default 0) paces the model's text deltas, as chatrelay's setting does.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import Annotated

from agents import Model
from chatkit.server import StreamingResult
from fastapi import FastAPI, Header, Path, Request
from fastapi.responses import Response, StreamingResponse
from tests.fakes.chatkit_reference import ReferenceAgent, ReferenceServer, reference_todo_tools
from tests.fakes.chatkit_store import RequestContext

from bench.chatkit_store import SQLiteStore
from bench.jwt_check import check_bearer
from chatrelay.agents import OfflineModel
from chatrelay.agents.assistant import SYSTEM_PROMPT
from chatrelay.agents.todo_commands import confirm_todo_result, recognize_todo_command

HISTORY_LIMIT = 50  # chatrelay's default HISTORY_LIMIT


def offline_model(delay_seconds: float = 0.0) -> OfflineModel:
    """chatrelay's offline model, understanding todo commands, as the reference agent's."""
    return OfflineModel(
        [recognize_todo_command], [confirm_todo_result], delay_seconds=delay_seconds
    )


def create_app(secret: str, db_path: FilePath, model: Model | None = None) -> FastAPI:
    """The app; the store's connection is opened and closed by its lifespan."""
    store = SQLiteStore(db_path)
    agent = ReferenceAgent(
        name="chatkit-bench",
        instructions=SYSTEM_PROMPT,
        model=model or offline_model(),
        tools=reference_todo_tools(),
    )
    server = ReferenceServer(store, agent, history_items=HISTORY_LIMIT)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await store.open()
        try:
            yield
        finally:
            await store.close()

    app = FastAPI(title="chatrelay bench: ChatKitServer", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/{user_id}/chat")
    async def chat(
        request: Request,
        user_id: Annotated[str, Path(min_length=1, max_length=255)],
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        check_bearer(secret, authorization, user_id)
        result = await server.process(await request.body(), RequestContext(user_id))
        if isinstance(result, StreamingResult):
            return StreamingResponse(result, media_type="text/event-stream")
        return Response(result.json, media_type="application/json")

    return app


@functools.cache
def _app_from_environment() -> FastAPI:
    return create_app(
        os.environ["AUTH_SECRET"],
        FilePath(os.environ["CHATKIT_BENCH_DB"]),
        offline_model(float(os.environ.get("OFFLINE_DELAY_SECONDS", "0"))),
    )


def __getattr__(name: str) -> FastAPI:
    # `uvicorn bench.chatkit_app:app` reads `app` with getattr(): the app is built from the
    # environment then, not at import, so tests can import create_app() with no environment.
    if name == "app":
        return _app_from_environment()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
