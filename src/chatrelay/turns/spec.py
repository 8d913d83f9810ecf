"""What a turn is asked to do, and how it ended."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


TITLE_WORDS, TITLE_CHARS = 8, 60


def title_for(first_message: str) -> str:
    """A new conversation's default title: the first words of its first message."""
    words = first_message.split()
    title = " ".join(words[:TITLE_WORDS])
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip() + "…"
    elif len(words) > TITLE_WORDS:
        title += "…"
    return title


class Failure(Enum):
    """Why a turn ended without a complete reply (the value is what the user is told)."""

    MODEL = "the model is unavailable, please retry"
    TIMEOUT = "the turn took too long and was stopped"
    SHUTDOWN = "the server is shutting down, please retry"
    STORAGE = "the reply could not be saved, please retry"
    INTERNAL = "internal server error"
    STOPPED = "the turn was stopped"
    """An explicit stop (the cancel endpoint): not an error, the partial reply is kept."""
    LOST = "the server running this reply went away, please retry"
    """Seen by a reader on another instance: the one running the turn stopped answering."""
    UNREACHABLE = "the reply's live events are unavailable right now, please resume again"
    """Seen by a reader on another instance: the shared event stream could not be read."""


@dataclass(frozen=True)
class AttachmentRef:
    """A file the user sent with the message, as the model adapter asks for its bytes."""

    id: str
    name: str
    mime_type: str
    kind: str
    """`image` or `file`."""


History = list[tuple[str, str]]
"""Stored `(role, content)` pairs, oldest first: what the model reads before the new message."""


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
    """A new conversation's creation time (its first event and its row)."""
    history: History = field(default_factory=list)
    """Filled by `TurnService.start()` once the conversation's lease is held."""
    user_parts: dict[str, Any] | None = None
    """The edge's structured form of the user message, stored so the edge can rebuild it."""
    title: str | None = None
    """A new conversation's title, announced (`TitleSet`) once committed."""
    offer_stop: bool = False
    """Tell the client it may stop this turn (ChatKit's protocol streams show a stop button)."""
    retry: bool = False
    """Regenerate the reply to the existing user message `user_message_id`: the messages after
    it are replaced, in the finalizer's one transaction."""
    model: str | None = None
    """A model the client picked for this turn (checked against the allow-list); None: default."""
    tool_choice: str | None = None
    """A tool the client asked the model to use."""
    attachments: tuple[AttachmentRef, ...] = ()
    """Files sent with the message (checked to be the user's and uploaded), for the model."""
    edge: str = "json"
    """The protocol the turn was asked for by (`json`, `chatkit`, `ai-sdk`): a metrics label."""

    @classmethod
    def for_message(
        cls,
        user_id: str,
        text: str,
        *,
        conversation_id: str | None,
        correlation_id: str,
        request_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        **options: Any,
    ) -> TurnSpec:
        """A new user message, in a new conversation when `conversation_id` is None (then it
        gets an id, a creation time and a title from the message)."""
        is_new = conversation_id is None
        return cls(
            user_id=user_id,
            conversation_id=new_id("thr") if conversation_id is None else conversation_id,
            new_conversation=is_new,
            conversation_created_at=utcnow() if is_new else None,
            user_text=text,
            request_id=request_id,
            metadata=metadata,
            correlation_id=correlation_id,
            user_message_id=new_id("msg"),
            assistant_message_id=new_id("msg"),
            title=title_for(text) if is_new else None,
            **options,
        )

    @property
    def new_conversation_created_at(self) -> datetime:
        """A new conversation's creation time."""
        assert self.conversation_created_at is not None, "set for every new conversation"
        return self.conversation_created_at


@dataclass
class Usage:
    """The provider's own token counts, summed over the turn's model calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


STATUS_BY_FAILURE = {None: "completed", Failure.STOPPED: "cancelled"}
"""The stored status of a reply, by how its turn ended (anything else: `incomplete`)."""


@dataclass
class TurnOutcome:
    """The turn's reply as committed (or `failure` when it was not completed)."""

    message_id: str
    text: str
    created_at: datetime
    tool_calls: list[dict[str, Any]]
    """`{"tool_name", "parameters", "result"}` per call, in the order they were made."""
    usage: Usage
    status: str
    failure: Failure | None = None
    committed: bool = False
