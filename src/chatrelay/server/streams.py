"""What a streaming answer is, before any transport frames it: a conversation's encoded items
(ChatKit's events, or another wire format's), in batches, and the user's stream slot they
hold. The SSE routes (`server/sse.py`) and the WebSocket (`server/websocket.py`) both send
these, so every route computes its answer once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from chatrelay.chatkit import CHATKIT
from chatrelay.turns import Batch, StreamSlot, Turn, WireFormat


@dataclass(frozen=True)
class Stream:
    conversation_id: str
    batches: AsyncIterator[Batch[str]]
    """The wire format's items (ChatKit `ThreadStreamEvent` JSON unless the route asked for
    another), by item id (an SSE `id:`)."""
    slot: StreamSlot | None = None
    """One of the user's `MAX_STREAMS_PER_USER`, held until the stream ends; the transport
    releases it. None for items known in full (a stored reply)."""


def live(
    turn: Turn, slot: StreamSlot, after: int = -1, wire_format: WireFormat[str] = CHATKIT
) -> Stream:
    """A turn's items after id `after`, then live ones until it ends. Leaving the stream does
    not touch the turn: it runs on."""
    return following(turn.spec.conversation_id, turn.batches(wire_format, after), slot)


def following(conversation_id: str, batches: AsyncIterator[Batch[str]], slot: StreamSlot) -> Stream:
    stream = Stream(conversation_id, batches, slot)
    slot.release_with(stream)  # a stream no transport ever started still frees its slot
    return stream


def known(conversation_id: str, items: Iterable[str]) -> Stream:
    """Items known in full (a stored reply), numbered from 0."""
    return Stream(conversation_id, _one_batch(list(items)))


async def _one_batch(items: list[str]) -> AsyncIterator[Batch[str]]:
    yield list(enumerate(items))
