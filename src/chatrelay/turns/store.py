"""What the turn core needs from storage. `SqlTurnStore` is the real one (any database
`chatrelay.store` runs on); tests use an in-memory one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chatrelay.turns.spec import History, TurnOutcome, TurnSpec

RequestKey = tuple[str, str | None, str]
"""(user id, conversation id or None for a new conversation, request id)."""


@dataclass(frozen=True)
class StoredMessage:
    id: str
    conversation_id: str
    role: str
    content: str
    status: str
    tool_calls: list[dict[str, Any]]
    usage: dict[str, Any] | None
    request_id: str | None
    metadata: dict[str, Any] | None
    parts: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True)
class StoredReply:
    """A committed turn: the request's user message and the reply after it."""

    request: StoredMessage
    reply: StoredMessage


@dataclass(frozen=True)
class LeaseTerms:
    conversation_id: str
    holder: str
    ttl_seconds: float


class TurnStore(Protocol):
    async def open_turn(
        self,
        spec: TurnSpec,
        lease: LeaseTerms,
        *,
        history_limit: int,
        admit: Callable[[], Awaitable[None]],
        what: str,
    ) -> History:
        """In one transaction: take the lease of the user's conversation (`NotFound` naming
        `what` when it is not theirs, exactly as when it does not exist; `Busy` while
        another turn holds it), `admit()` the turn (limits), then read the history the turn
        continues: the newest `history_limit` messages, or those before the retried one."""
        ...

    async def commit_turn(
        self, spec: TurnSpec, outcome: TurnOutcome, lease: LeaseTerms | None
    ) -> bool:
        """Write the turn's messages (and a new conversation) and release `lease`, all in one
        transaction; False when it can no longer be written (the conversation or the retried
        message is gone). `StoreUnavailable` when it is worth trying again."""
        ...

    async def renew_lease(self, lease: LeaseTerms) -> bool: ...

    async def release_lease(self, lease: LeaseTerms) -> None: ...

    async def owns(self, user_id: str, conversation_id: str) -> bool:
        """Whether the conversation exists and is the user's (one answer for both)."""
        ...

    async def stored_reply(self, key: RequestKey) -> StoredReply | None:
        """The committed turn `key`'s request id names, if any (one query). Without a
        conversation id the request started a conversation, so only a first message counts."""
        ...
