"""The history API's wire models: conversation lists and stored messages for JSON clients."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chatrelay.schemas.chat import TokenUsage, ToolCallRecord
from chatrelay.schemas.text import TextBody

MAX_TITLE_CHARS = 200


class ConversationOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "thr_4f1c2a9e0b7d4c55",
                    "title": "Add a task to buy milk",
                    "created_at": "2026-11-27T10:00:00Z",
                    "updated_at": "2026-11-27T10:05:12Z",
                }
            ]
        }
    )

    id: str
    title: str | None
    created_at: datetime
    updated_at: datetime


class ConversationPage(BaseModel):
    """Newest first. Pass `after` (the last id of this page) for the next page."""

    data: list[ConversationOut]
    has_more: bool
    after: str | None = Field(description="The cursor for the next page, null on the last")


class MessageOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "msg_9b2e77c1a0f34d21",
                    "role": "assistant",
                    "content": "Added task 1: buy milk.",
                    "status": "completed",
                    "created_at": "2026-11-27T10:00:01Z",
                    "tool_calls": [
                        {
                            "tool_name": "add_task",
                            "parameters": {"title": "buy milk"},
                            "result": {"id": 1, "title": "buy milk", "completed": False},
                        }
                    ],
                    "usage": {"input_tokens": 40, "output_tokens": 9, "total_tokens": 49},
                }
            ]
        }
    )

    id: str
    role: str
    content: str
    status: str = Field(description="completed, cancelled (stopped) or incomplete (failed)")
    created_at: datetime
    tool_calls: list[ToolCallRecord]
    usage: TokenUsage | None = Field(description="The provider's counts; null on user messages")


class MessagePage(BaseModel):
    """Messages in the requested order; `first_id`/`last_id` are the cursors to page on."""

    data: list[MessageOut]
    has_more: bool = Field(description="More messages lie beyond `last_id` in this order")
    first_id: str | None
    last_id: str | None


class ConversationPatch(TextBody):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"title": "Groceries"}]}
    )

    title: str | None = Field(max_length=MAX_TITLE_CHARS)
    """The new title; null clears it."""


def usage_of(stored: dict[str, Any] | None) -> TokenUsage | None:
    return TokenUsage.model_validate(stored) if stored else None
