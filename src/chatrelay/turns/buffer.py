"""Where a turn's items can be read again by id: the seam for resuming streams.

In-process by default (the registry keeps running and recently finished turns). A shared
implementation (Redis Streams, for several instances) keeps the typed events (`TURN_EVENTS`,
`chatrelay.turns.codec`) and encodes them with the reader's format, as the log does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, TypeVar

from chatrelay.turns.log import Batch, WireFormat
from chatrelay.turns.registry import TurnRegistry

T = TypeVar("T")


class TurnBuffer(Protocol):
    def replay(
        self, conversation_id: str, user_id: str, wire_format: WireFormat[T], after: int
    ) -> AsyncIterator[Batch[T]] | None:
        """The user's latest turn's items after id `after`, then live ones until it ends;
        None when no turn of this conversation is running or still kept."""
        ...


class InProcessTurnBuffer:
    def __init__(self, registry: TurnRegistry) -> None:
        self._registry = registry

    def replay(
        self, conversation_id: str, user_id: str, wire_format: WireFormat[T], after: int
    ) -> AsyncIterator[Batch[T]] | None:
        turn = self._registry.latest_turn(conversation_id)
        if turn is None or turn.spec.user_id != user_id:
            return None
        return turn.batches(wire_format, after)
