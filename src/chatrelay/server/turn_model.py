"""What a turn is asked to do, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from chatrelay.agents import UsageTotals
from chatrelay.store.tables import utcnow


class Failure(Enum):
    """Why a turn ended without a complete reply."""

    MODEL = "the model is unavailable, please retry"
    TIMEOUT = "the turn took too long and was stopped"
    SHUTDOWN = "the server is shutting down, please retry"
    STORAGE = "the reply could not be saved, please retry"
    INTERNAL = "internal server error"
    STOPPED = "the turn was stopped"
    """An explicit stop (the cancel endpoint): not an error, the partial reply is kept."""


@dataclass
class TurnSpec:
    """Everything a turn needs, resolved by the request before the turn starts."""

    user_id: str
    conversation_id: str
    new_conversation: bool
    user_text: str
    request_id: str | None
    metadata: dict[str, Any] | None
    correlation_id: str
    user_message_id: str
    assistant_message_id: str
    started_at: datetime = field(default_factory=utcnow)
    conversation_created_at: datetime | None = None
    """A new conversation's creation time (its `thread.created` event and row)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Filled by `launch()` once the conversation's lease is held."""
    user_parts: dict[str, Any] | None = None
    """ChatKit input of the user message (content parts, quoted text, inference options)."""
    title: str | None = None
    """A new conversation's title, announced with `thread.updated` once committed."""
    stream_options: bool = False
    """Announce ChatKit `stream_options` (the ChatKit protocol's streams do)."""
    retry: bool = False
    """Regenerate the reply to the existing user message `user_message_id`: the messages after
    it are replaced, in the finalizer's one transaction."""

    @property
    def new_conversation_created_at(self) -> datetime:
        """A new conversation's creation time."""
        assert self.conversation_created_at is not None, "set for every new conversation"
        return self.conversation_created_at


@dataclass
class TurnOutcome:
    """The turn's reply as committed (or `failure` when it was not completed)."""

    message_id: str
    text: str
    created_at: datetime
    tool_calls: list[dict[str, Any]]
    usage: UsageTotals
    status: str
    failure: Failure | None = None
    committed: bool = False
