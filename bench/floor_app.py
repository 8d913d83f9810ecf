"""The floor: the least a FastAPI + sse-starlette server can do to stream a ChatKit reply.

Same JWT check as chatrelay (HS256 allow-list, `sub` and `exp` required, `sub` must equal the
path's user id) and the same SSE framing (an `id:` per event, same headers and ping), but no
model, no agent runner, no database: it streams `FLOOR_EVENTS` `thread.item.updated` text-delta
events whose JSON was serialised once, at import, `FLOOR_DELAY_SECONDS` apart (default 0; the
concurrency bench holds streams open with it). With `Accept: application/json` it answers one
pre-built JSON reply shaped like chatrelay's `ChatResponse` instead. Run it with
`uvicorn bench.floor_app:app` and `AUTH_SECRET` / `FLOOR_EVENTS` in the environment.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Body, FastAPI, Header, Path
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from bench.jwt_check import check_bearer

SECRET = os.environ["AUTH_SECRET"]
EVENT_COUNT = int(os.environ.get("FLOOR_EVENTS", "513"))
DELAY_SECONDS = float(os.environ.get("FLOOR_DELAY_SECONDS", "0"))
ITEM_ID = "msg_" + "0" * 32  # the length of chatrelay's `msg_<uuid4 hex>` ids


def text_delta_event(delta: str) -> str:
    """A ChatKit `thread.item.updated` event carrying one assistant text delta, as JSON."""
    update = {
        "type": "assistant_message.content_part.text_delta",
        "content_index": 0,
        "delta": delta,
    }
    event = {"type": "thread.item.updated", "item_id": ITEM_ID, "update": update}
    return json.dumps(event, separators=(",", ":"))


# Deltas shaped like the offline model's: one word and a trailing space ("w17 ").
EVENTS: tuple[str, ...] = tuple(text_delta_event(f"w{i} ") for i in range(EVENT_COUNT))
REPLY = " ".join(f"w{i}" for i in range(EVENT_COUNT))
JSON_REPLY = json.dumps(
    {
        "conversation_id": "thr_" + "0" * 32,
        "message_id": ITEM_ID,
        "role": "assistant",
        "message": REPLY,
        "response": REPLY,
        "created_at": "2026-11-27T10:00:00Z",
        "tool_calls": [],
        "usage": {"input_tokens": EVENT_COUNT, "output_tokens": EVENT_COUNT, "total_tokens": 0},
        "request_id": None,
        "metadata": None,
    },
    separators=(",", ":"),
).encode()


class ChatBody(BaseModel):
    message: str = Field(min_length=1, max_length=10_000)


async def frames() -> AsyncIterator[ServerSentEvent]:
    for sequence, data in enumerate(EVENTS):
        if DELAY_SECONDS:
            await asyncio.sleep(DELAY_SECONDS)
        yield ServerSentEvent(data=data, id=str(sequence))


app = FastAPI(title="chatrelay bench floor")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/api/{user_id}/chat")
async def chat(
    user_id: Annotated[str, Path(min_length=1, max_length=255)],
    body: Annotated[ChatBody, Body()],
    authorization: Annotated[str | None, Header()] = None,
    accept: Annotated[str, Header()] = "application/json",
) -> Response:
    check_bearer(SECRET, authorization, user_id)
    if "text/event-stream" not in accept:
        return Response(JSON_REPLY, media_type="application/json")
    return EventSourceResponse(
        frames(),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        ping=15,
        send_timeout=30,
    )
