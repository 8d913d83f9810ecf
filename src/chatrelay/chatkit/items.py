"""Thread items rebuilt from the messages table, with stable ids and real timestamps.

A user message is one `user_message` item; an assistant message is a `workflow` item (when it
called tools) followed by its `assistant_message` item. Pages are cut in item order; a cursor
is an item id, always looked up inside the user's own conversation.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, Protocol

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    InferenceOptions,
    Page,
    Thread,
    ThreadItem,
    UserMessageContent,
    UserMessageItem,
    UserMessageTextContent,
)
from pydantic import TypeAdapter
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.chatkit import events as ck
from chatrelay.chatkit.attachments import Preview, attachments_of
from chatrelay.store import Conversation, Message
from chatrelay.store.repositories import MessageRepository
from chatrelay.store.tables import as_utc

DEFAULT_PAGE_SIZE = 20  # chatkit-python's own default
MAX_PAGE_SIZE = 100

_CONTENT: TypeAdapter[list[UserMessageContent]] = TypeAdapter(list[UserMessageContent])
_OPTIONS: TypeAdapter[InferenceOptions] = TypeAdapter(InferenceOptions)

Order = Literal["asc", "desc"]


RESULT_PREVIEW_CHARS = 300


def workflow_id_for(assistant_message_id: str) -> str:
    """The workflow item's id, derived so a reload rebuilds the same id."""
    return "wf_" + assistant_message_id.removeprefix("msg_")


def result_preview(result: Any) -> str:
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    if len(text) <= RESULT_PREVIEW_CHARS:
        return text
    return text[: RESULT_PREVIEW_CHARS - 1] + "…"


class MessageFields(Protocol):
    """What items are made of: a stored `Message`, or a stored reply of the turn core."""

    @property
    def id(self) -> str: ...
    @property
    def conversation_id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def content(self) -> str: ...
    @property
    def parts(self) -> dict[str, Any] | None: ...
    @property
    def tool_calls(self) -> list[dict[str, Any]]: ...
    @property
    def created_at(self) -> datetime: ...


def user_item(
    item_id: str,
    thread_id: str,
    text: str,
    parts: dict[str, Any] | None,
    created_at: datetime,
    preview: Preview | None = None,
) -> UserMessageItem:
    """A user message: its stored ChatKit input when it came from ChatKit, else its text;
    with `preview`, its images get fresh preview links."""
    parts = parts or {}
    content: list[UserMessageContent] = (
        _CONTENT.validate_python(parts["content"])
        if parts.get("content")
        else [UserMessageTextContent(text=text)]
    )
    return UserMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=as_utc(created_at),
        content=content,
        attachments=attachments_of(parts, thread_id, preview),
        quoted_text=parts.get("quoted_text"),
        inference_options=_OPTIONS.validate_python(parts.get("inference_options") or {}),
    )


def items_of(message: MessageFields, preview: Preview | None = None) -> list[ThreadItem]:
    """The items one stored message stands for, oldest first."""
    if message.role == "user":
        return [
            user_item(
                message.id,
                message.conversation_id,
                message.content,
                message.parts,
                message.created_at,
                preview,
            )
        ]
    created_at = as_utc(message.created_at)
    items: list[ThreadItem] = []
    if message.tool_calls:
        tasks = [
            ck.tool_task(call["tool_name"], done=True, content=result_preview(call.get("result")))
            for call in message.tool_calls
        ]
        items.append(
            ck.workflow_item(
                workflow_id_for(message.id), message.conversation_id, created_at, tasks
            )
        )
    items.append(
        AssistantMessageItem(
            id=message.id,
            thread_id=message.conversation_id,
            created_at=created_at,
            content=[AssistantMessageContent(text=message.content)],
        )
    )
    return items


def message_id_of(item_id: str) -> str:
    """The message an item id was derived from (a workflow item shares its reply's id)."""
    return "msg_" + item_id.removeprefix("wf_") if item_id.startswith("wf_") else item_id


async def items_page(
    db: AsyncSession,
    conversation_id: str,
    *,
    limit: int,
    order: Order,
    after: str | None,
    preview: Preview | None = None,
) -> Page[ThreadItem]:
    """Items of one conversation after the `after` item, in `order`; `LookupError` if the
    cursor item is not in this conversation."""
    messages = MessageRepository(db)
    start: Message | None = None
    if after is not None:
        start = await messages.get(conversation_id, message_id_of(after))
        if start is None:
            raise LookupError(after)
    # A message gives one or two items and the cursor's message gives at most two we skip:
    # limit + 3 messages always fill a page and tell whether another follows.
    rows = await messages.from_message(conversation_id, start, order, limit + 3)
    items: list[ThreadItem] = []
    for message in rows:
        expanded = items_of(message, preview)
        items.extend(reversed(expanded) if order == "desc" else expanded)
    if after is not None:
        ids = [item.id for item in items]
        if after not in ids:
            raise LookupError(after)
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    has_more = len(items) > limit
    return Page(data=page, has_more=has_more, after=page[-1].id if page and has_more else None)


def thread_of(conversation: Conversation, items: Page[ThreadItem] | None = None) -> Thread:
    return Thread(
        id=conversation.id,
        title=conversation.title,
        created_at=as_utc(conversation.created_at),
        items=items or Page(),
    )


def clamp_limit(limit: int | None) -> int:
    return max(1, min(limit or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE))
