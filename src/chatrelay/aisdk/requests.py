"""What `DefaultChatTransport` posts (`ai` 7.x `HttpChatTransport.sendMessages`), as a turn.

The body is `{id, messages, trigger, messageId, ...body}`: `id` is the chat's id, which is the
conversation's (a chat the user has no conversation for yet starts one with that id).
Only the newest message is read, and it must be the user's: the history comes from the
database, so a client-sent history that differs from it is ignored. Its id is the request
id (`messageId` when the client names one): a repeat attaches to its turn or gets its reply.
`regenerate-message` is refused: regenerating a reply is not offered on this route.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chatrelay.schemas.chat import MAX_MESSAGE_CHARS
from chatrelay.turns import Invalid, TurnSpec

ID_PATTERN = r"^[A-Za-z0-9_-]+$"


class UIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=128)
    role: Literal["system", "user", "assistant"]
    parts: list[dict[str, Any]]


class ChatRequest(BaseModel):
    """The transport's body; any other fields (the client's `body` option) are ignored."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    messages: list[UIMessage] = Field(min_length=1)
    trigger: Literal["submit-message", "regenerate-message"] = "submit-message"
    messageId: str | None = Field(default=None, min_length=1, max_length=128)  # noqa: N815


def new_text(request: ChatRequest) -> str:
    """The newest user message's text (its text parts, in order)."""
    if request.trigger == "regenerate-message":
        raise Invalid("trigger regenerate-message is not supported; send a new message")
    newest = request.messages[-1]
    if newest.role != "user":
        raise Invalid("the newest message must be the user's")
    texts: list[str] = []
    for index, message_part in enumerate(newest.parts):
        kind = message_part.get("type")
        if kind == "text" and isinstance(message_part.get("text"), str):
            texts.append(message_part["text"])
        elif kind != "step-start":
            raise Invalid(f"messages[-1].parts[{index}]: only text parts are supported")
    text = "".join(texts)
    if not text.strip():
        raise Invalid("the newest message has no text")
    if len(text) > MAX_MESSAGE_CHARS:
        raise Invalid(f"the message is longer than {MAX_MESSAGE_CHARS} characters")
    return text


def request_id(request: ChatRequest) -> str:
    return request.messageId or request.messages[-1].id


def turn_spec(user_id: str, request: ChatRequest, *, exists: bool, correlation_id: str) -> TurnSpec:
    """The request's turn: in the user's conversation `request.id` when it `exists`, else in
    a new one with that id."""
    spec = TurnSpec.for_message(
        user_id,
        new_text(request),
        conversation_id=request.id if exists else None,
        correlation_id=correlation_id,
        request_id=request_id(request),
        edge="ai-sdk",
    )
    if not exists:
        spec.conversation_id = request.id
    return spec
