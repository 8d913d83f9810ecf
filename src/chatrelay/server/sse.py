"""The one place that knows the SSE framing: frames of already-encoded items, as a response.

Encoding an event is the wire format's job (`chatrelay.chatkit.CHATKIT` for ChatKit's
events), done once per event and shared by every reader; framing is done here, once per
reader write.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable

from sse_starlette import EventSourceResponse

from chatrelay.config import Settings
from chatrelay.turns import Batch, StreamSlot


def frame(sequence: int, data: str) -> bytes:
    """One SSE event, byte for byte as sse-starlette's `ServerSentEvent(data, id).encode()`.

    JSON never holds a raw newline, so `data` is always one line. A lone surrogate (a
    provider may send one, escaped) cannot be UTF-8: it becomes "?" instead of an error.
    """
    return f"id: {sequence}\r\ndata: {data}\r\n\r\n".encode("utf-8", "replace")


class _Frames:
    """Batches of a turn's items as SSE writes, holding one of the user's stream slots while
    they flow (released however the stream ends, even if it never starts)."""

    def __init__(self, batches: AsyncIterator[Batch[str]], slot: StreamSlot) -> None:
        self._batches = batches
        self._slot = slot
        slot.release_with(self)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for batch in self._batches:
                yield b"".join(frame(sequence, data) for sequence, data in batch)
        finally:
            self._slot.release()


async def _items(items: Iterable[str]) -> AsyncIterator[bytes]:
    for sequence, data in enumerate(items):
        yield frame(sequence, data)


def sse_response(frames: AsyncIterable[bytes], settings: Settings) -> EventSourceResponse:
    """Frames as a response: sse-starlette's headers (`Cache-Control: no-store`,
    `X-Accel-Buffering: no`), keep-alive pings and a send timeout."""
    return EventSourceResponse(
        frames, ping=settings.sse_ping_seconds, send_timeout=settings.sse_send_timeout_seconds
    )


def stream_response(
    batches: AsyncIterator[Batch[str]], slot: StreamSlot, settings: Settings
) -> EventSourceResponse:
    """A turn's items, live. Leaving the stream (a client disconnect) does not touch the
    turn: it runs on."""
    return sse_response(_Frames(batches, slot), settings)


def items_response(items: Iterable[str], settings: Settings) -> EventSourceResponse:
    """Items known in full (a stored reply), numbered from 0."""
    return sse_response(_items(items), settings)
