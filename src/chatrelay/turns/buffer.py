"""Where a turn's items can be read again by id: the seam for resuming streams.

In-process by default (the registry keeps running and recently finished turns). A shared
implementation (`chatrelay.cluster`, Redis Streams, for several instances) mirrors each turn's
typed events (`TURN_EVENTS`, `chatrelay.turns.codec`) as the turn writes them and, on any
other instance, encodes them with the reader's format, as the log does: same items, same ids.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, TypeVar

from chatrelay.turns.log import Batch, WireFormat
from chatrelay.turns.registry import TurnRegistry
from chatrelay.turns.turn import Turn

T = TypeVar("T")


class TurnBuffer(Protocol):
    async def track(self, turn: Turn) -> None:
        """A turn of this process has just started (a shared buffer names it where other
        instances look, then mirrors it)."""
        ...

    async def replay(
        self, conversation_id: str, user_id: str, wire_format: WireFormat[T], after: int
    ) -> AsyncIterator[Batch[T]] | None:
        """The user's latest turn's items after id `after`, then live ones until it ends;
        None when no turn of this conversation is running or still kept."""
        ...


class InProcessTurnBuffer:
    def __init__(self, registry: TurnRegistry) -> None:
        self._registry = registry

    async def track(self, turn: Turn) -> None:
        """Nothing to do: the registry already keeps the turn."""

    async def replay(
        self, conversation_id: str, user_id: str, wire_format: WireFormat[T], after: int
    ) -> AsyncIterator[Batch[T]] | None:
        return self.local(conversation_id, user_id, wire_format, after)

    def local(
        self, conversation_id: str, user_id: str, wire_format: WireFormat[T], after: int
    ) -> AsyncIterator[Batch[T]] | None:
        """The same, from this process's turns only."""
        turn = self._registry.latest_turn(conversation_id)
        if turn is None or turn.spec.user_id != user_id:
            return None
        return turn.batches(wire_format, after)
