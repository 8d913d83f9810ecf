"""Where a turn's events can be read again by sequence id: the seam for resuming streams.

In-process by default (the registry keeps running and recently finished turns); a shared
implementation (Redis Streams, for several instances) only has to provide `replay`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from chatrelay.server.turns import TurnRegistry

Events = AsyncIterator[list[tuple[int, str]]]
"""Batches of (sequence id, encoded ChatKit event), in order."""


class TurnBuffer(Protocol):
    def replay(self, conversation_id: str, user_id: str, after: int) -> Events | None:
        """The user's turn's events after `after`, then live ones until the turn ends;
        None when no turn of this conversation is running or still kept."""


class InProcessTurnBuffer:
    def __init__(self, registry: TurnRegistry) -> None:
        self._registry = registry

    def replay(self, conversation_id: str, user_id: str, after: int) -> Events | None:
        turn = self._registry.latest_turn(conversation_id)
        if turn is None or turn.spec.user_id != user_id:
            return None
        return turn.batches(after)
