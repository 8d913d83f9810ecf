"""The seam to turns running on other instances (`chatrelay.cluster` implements it with
Redis): stop one from here, and tell a conversation held by an instance that is gone."""

from __future__ import annotations

from typing import Protocol

from chatrelay.turns.spec import TurnOutcome


class RemoteTurns(Protocol):
    async def stop(
        self, conversation_id: str, user_id: str, *, wait_seconds: float
    ) -> TurnOutcome | None:
        """Stop the user's turn of the conversation running elsewhere and wait (up to
        `wait_seconds`) for its outcome; None if it is not settled by then. `Conflict` when
        no turn of the user runs there."""
        ...

    async def orphaned(self, conversation_id: str) -> str | None:
        """The lease holder of the conversation's turn if the instance running it is gone
        (its lease can be taken over at once), else None."""
        ...
