"""The turn's events: a small closed set, in the order a turn produces them.

    TurnStarted, UserMessageAccepted (not on a retry),
    AssistantStarted (at the reply's first output), then any of ToolCallStarted,
    ToolCallArguments, ToolCallFinished and TextDelta as the model produces them,
    AssistantFinished (the reply as committed), TitleSet, TurnFailed, and always TurnEnded last.

They are data, not any wire format: each edge (ChatKit's stream, another vocabulary, a socket)
encodes them with its own encoder (see `chatrelay.turns.log.WireFormat`). An encoder must be a
pure function of the events so far: every reader of a format, on any instance, gets the same
frames with the same ids. The model adapter yields the four model events itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chatrelay.turns.spec import Failure, TurnOutcome


@dataclass(frozen=True, slots=True)
class TurnStarted:
    conversation_id: str
    new_conversation: bool
    conversation_created_at: datetime | None
    """A new conversation's creation time (None for an existing one)."""
    offer_stop: bool
    retry: bool
    """A retry regenerates the reply to a stored user message: no UserMessageAccepted follows."""


@dataclass(frozen=True, slots=True)
class UserMessageAccepted:
    message_id: str
    text: str
    parts: dict[str, Any] | None
    """The edge's structured form of the message (ChatKit input parts), if it sent one."""
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AssistantStarted:
    """The reply exists from here on: its first output (a tool call or text), or the end of a
    turn that completed without any. Every item the reply stands for carries `created_at`."""

    message_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The model has just decided to call a tool (its arguments may still be streaming)."""

    call_id: str
    tool_name: str


@dataclass(frozen=True, slots=True)
class ToolCallArguments:
    """The call's arguments are complete; the tool runs now."""

    call_id: str
    tool_name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    call_id: str
    result: Any


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class AssistantFinished:
    """The reply as committed: its whole text and stored status (`completed`, `cancelled`,
    `incomplete`). Only published once the commit succeeded."""

    message_id: str
    text: str
    status: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TitleSet:
    """The conversation's title, announced once the first turn that set it is committed."""

    title: str


@dataclass(frozen=True, slots=True)
class TurnFailed:
    """The turn did not complete; `message` is for the user (it names the correlation id)."""

    failure: Failure
    message: str
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """Always the last event."""

    outcome: TurnOutcome


ModelEvent = TextDelta | ToolCallStarted | ToolCallArguments | ToolCallFinished
"""What a model adapter yields while the model runs."""

TurnEvent = (
    TurnStarted
    | UserMessageAccepted
    | AssistantStarted
    | ToolCallStarted
    | ToolCallArguments
    | ToolCallFinished
    | TextDelta
    | AssistantFinished
    | TitleSet
    | TurnFailed
    | TurnEnded
)

EVENT_TYPES: tuple[type[TurnEvent], ...] = (
    TurnStarted,
    UserMessageAccepted,
    AssistantStarted,
    ToolCallStarted,
    ToolCallArguments,
    ToolCallFinished,
    TextDelta,
    AssistantFinished,
    TitleSet,
    TurnFailed,
    TurnEnded,
)
