"""The plain JSON API of `POST /api/{user_id}/chat`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from chatrelay.schemas.text import TextBody

MAX_MESSAGE_CHARS = 10_000


class ChatRequest(TextBody):
    """A user's message; without `conversation_id` a new conversation is started."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"message": "Hello!", "conversation_id": None, "request_id": "req-1"}]
        },
    )

    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    conversation_id: str | None = Field(default=None, min_length=1, max_length=64)
    request_id: str | None = Field(default=None, min_length=1, max_length=255)
    """The client's id for this turn, echoed back (retry de-duplication builds on it)."""
    metadata: dict[str, Any] | None = None

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message must not be only whitespace")
        if "\x00" in value:
            raise ValueError("message must not contain NUL characters")
        return value


class ToolCallRecord(BaseModel):
    """One tool call the agent made during the turn, with its result."""

    tool_name: str
    parameters: dict[str, Any]
    result: Any = None


class TokenUsage(BaseModel):
    """The provider's token counts, summed over the turn's model calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class ChatResponse(BaseModel):
    """The assistant's complete reply to one turn."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "conversation_id": "thr_4f1c2a9e0b7d4c55",
                    "message_id": "msg_9b2e77c1a0f34d21",
                    "role": "assistant",
                    "message": "Hi! How can I help?",
                    "response": "Hi! How can I help?",
                    "created_at": "2026-11-27T10:00:00Z",
                    "tool_calls": [],
                    "usage": {"input_tokens": 12, "output_tokens": 6, "total_tokens": 18},
                    "request_id": "req-1",
                    "metadata": None,
                }
            ]
        }
    )

    conversation_id: str
    message_id: str
    role: str = "assistant"
    message: str
    response: str
    """The same text as `message`, for clients of the todo-chatbot template."""
    created_at: datetime
    tool_calls: list[ToolCallRecord]
    usage: TokenUsage
    request_id: str | None = None
    metadata: dict[str, Any] | None = None


class ChatKitEnvelope(BaseModel):
    """A ChatKit request (`{"type", "params", "metadata"}`), as on `POST /chatkit`."""

    model_config = ConfigDict(extra="allow")

    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


def _body_kind(value: Any) -> str:
    is_envelope = isinstance(value, dict) and "type" in value
    return "chatkit" if is_envelope else "chat"


ChatBody = Annotated[
    Annotated[ChatRequest, Tag("chat")] | Annotated[ChatKitEnvelope, Tag("chatkit")],
    Discriminator(_body_kind),
]
"""The chat endpoint's body: a plain chat request, or a ChatKit envelope (it has `type`)."""
