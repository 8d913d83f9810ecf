"""The one place that knows the wire format of a ChatKit event and of an SSE frame.

Text deltas are most of a stream's events, so they have a fast path that writes the same
bytes as the pydantic model would (a unit test holds the two together).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Callable

from pydantic import BaseModel
from sse_starlette import EventSourceResponse

from chatrelay.config import Settings

# The C string encoder `json.dumps(..., ensure_ascii=False)` uses for a str.
_json_string: Callable[[str], str] = json.encoder.encode_basestring
_TEXT_DELTA_PREFIX = (
    '{"type":"thread.item.updated","item_id":%s,"update":'
    '{"type":"assistant_message.content_part.text_delta","content_index":0,"delta":'
)


def encode_event(event: BaseModel) -> str:
    """JSON for an SSE `data:` field: aliases, no nulls, as chatkit-python writes it."""
    return event.model_dump_json(by_alias=True, exclude_none=True)


def text_delta_encoder(item_id: str) -> Callable[[str], str]:
    """`delta -> encode_event(text_delta(item_id, delta))`, without building the models: the
    item's part is encoded once, each delta is one C call and two concatenations."""
    prefix = _TEXT_DELTA_PREFIX % _json_string(item_id)

    def encode(delta: str) -> str:
        return prefix + _json_string(delta) + "}}"

    return encode


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
