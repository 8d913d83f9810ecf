"""The seam to whatever runs the model: the core only sees `TurnModel`.

`chatrelay.agents` implements it with the OpenAI Agents SDK; tests use a fake. An adapter
maps its provider's failures to `ModelUnavailable`; anything else it raises is our fault.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Protocol

from chatrelay.turns.events import ModelEvent
from chatrelay.turns.spec import AttachmentRef, History, Usage
from chatrelay.turns.tracing import NO_TRACE, ModelCalls


@dataclass(frozen=True)
class ModelRequest:
    """One turn's input to the model. The user travels here, never in tool arguments."""

    user_id: str
    conversation_id: str
    history: History
    text: str
    model: str | None = None
    """The model to use, or None for the configured one."""
    tool_choice: str | None = None
    attachments: tuple[AttachmentRef, ...] = ()
    """Files sent with the message: the adapter reads their bytes and hands them over."""
    calls: ModelCalls = field(default=NO_TRACE, compare=False)
    """Where the adapter reports each model call (the turn's trace; `NO_TRACE` when off)."""


class ModelUnavailable(Exception):
    """The provider failed (a connection, a status, a refusal to continue): retryable."""


class TurnModel(Protocol):
    def stream(self, request: ModelRequest, usage: Usage) -> AsyncGenerator[ModelEvent, None]:
        """The model's output as it happens. However the iteration ends (completion, an
        error, `aclose()`, cancellation) the run is over when it returns: no model call
        outlives its turn, and `usage` then holds the provider's counts so far."""
        ...
