"""The one place that knows the SSE framing: a stream's already-encoded items, as a response.

Encoding an event is the wire format's job (`chatrelay.chatkit.CHATKIT` for ChatKit's
events), done once per event and shared by every reader; framing is done here, once per
reader write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from sse_starlette import EventSourceResponse

from chatrelay.config import Settings
from chatrelay.server.streams import Stream


def frame(sequence: int, data: str) -> bytes:
    """One SSE event, byte for byte as sse-starlette's `ServerSentEvent(data, id).encode()`.

    JSON never holds a raw newline, so `data` is always one line. A lone surrogate (a
    provider may send one, escaped) cannot be UTF-8: it becomes "?" instead of an error.
    """
    return f"id: {sequence}\r\ndata: {data}\r\n\r\n".encode("utf-8", "replace")


async def _frames(stream: Stream) -> AsyncIterator[bytes]:
    """The stream's batches as SSE writes, its stream slot released however they end."""
    try:
        async for batch in stream.batches:
            yield b"".join(frame(sequence, data) for sequence, data in batch)
    finally:
        if stream.slot is not None:
            stream.slot.release()


def stream_response(
    stream: Stream, settings: Settings, headers: Mapping[str, str] | None = None
) -> EventSourceResponse:
    """A stream as a response: sse-starlette's headers (`Cache-Control: no-store`,
    `X-Accel-Buffering: no`) and the format's own `headers`, keep-alive pings and a send
    timeout."""
    return EventSourceResponse(
        _frames(stream),
        headers=dict(headers) if headers else None,
        ping=settings.sse_ping_seconds,
        send_timeout=settings.sse_send_timeout_seconds,
    )
