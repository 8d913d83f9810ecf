"""The one place that knows the wire format of a ChatKit event and of an SSE frame.

Text deltas are most of a stream's events, so they have a fast path that writes the same
bytes as the pydantic model would (a unit test holds the two together).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable

from pydantic import BaseModel
from sse_starlette import EventSourceResponse

from chatrelay.config import Settings

_json_string = json.JSONEncoder(ensure_ascii=False).encode
_TEXT_DELTA = (
    '{"type":"thread.item.updated","item_id":%s,"update":'
    '{"type":"assistant_message.content_part.text_delta","content_index":0,"delta":%s}}'
)


def encode_event(event: BaseModel) -> str:
    """JSON for an SSE `data:` field: aliases, no nulls, as chatkit-python writes it."""
    return event.model_dump_json(by_alias=True, exclude_none=True)


def encode_text_delta(item_id: str, delta: str) -> str:
    """`encode_event(text_delta(item_id, delta))`, without building the models."""
    return _TEXT_DELTA % (_json_string(item_id), _json_string(delta))


def frame(sequence: int, data: str) -> bytes:
    """One SSE event, byte for byte as sse-starlette's `ServerSentEvent(data, id).encode()`.

    JSON never holds a raw newline, so `data` is always one line. A lone surrogate (a
    provider may send one, escaped) cannot be UTF-8: it becomes "?" instead of an error.
    """
    return f"id: {sequence}\r\ndata: {data}\r\n\r\n".encode("utf-8", "replace")


def sse_response(frames: AsyncIterable[bytes], settings: Settings) -> EventSourceResponse:
    """Frames as a response: no caching, no proxy buffering, keep-alive pings, send timeout."""
    return EventSourceResponse(
        frames,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        ping=settings.sse_ping_seconds,
        send_timeout=settings.sse_send_timeout_seconds,
    )
