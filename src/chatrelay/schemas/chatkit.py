"""ChatKit's stream vocabulary, built from `chatkit.types` (never re-declared here).

Each function returns the typed event for one step of a turn; `server/sse.py` encodes them.
"""

from __future__ import annotations

from datetime import datetime

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartDone,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ErrorEvent,
    InferenceOptions,
    Page,
    Thread,
    ThreadCreatedEvent,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
    UserMessageItem,
    UserMessageTextContent,
)
from pydantic import TypeAdapter

THREAD_STREAM_EVENT: TypeAdapter[ThreadStreamEvent] = TypeAdapter(ThreadStreamEvent)
"""Validates any event we emit (the tests run every emitted event through it)."""


def thread_created(thread_id: str, created_at: datetime, title: str | None) -> ThreadCreatedEvent:
    return ThreadCreatedEvent(
        thread=Thread(id=thread_id, created_at=created_at, title=title, items=Page())
    )


def user_message_done(
    item_id: str, thread_id: str, created_at: datetime, text: str
) -> ThreadItemDoneEvent:
    item = UserMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=created_at,
        content=[UserMessageTextContent(text=text)],
        inference_options=InferenceOptions(),
    )
    return ThreadItemDoneEvent(item=item)


def assistant_message_added(
    item_id: str, thread_id: str, created_at: datetime
) -> ThreadItemAddedEvent:
    item = AssistantMessageItem(id=item_id, thread_id=thread_id, created_at=created_at, content=[])
    return ThreadItemAddedEvent(item=item)


def content_part_added(item_id: str) -> ThreadItemUpdatedEvent:
    part = AssistantMessageContentPartAdded(
        content_index=0, content=AssistantMessageContent(text="")
    )
    return ThreadItemUpdatedEvent(item_id=item_id, update=part)


def text_delta(item_id: str, delta: str) -> ThreadItemUpdatedEvent:
    update = AssistantMessageContentPartTextDelta(content_index=0, delta=delta)
    return ThreadItemUpdatedEvent(item_id=item_id, update=update)


def content_part_done(item_id: str, text: str) -> ThreadItemUpdatedEvent:
    part = AssistantMessageContentPartDone(
        content_index=0, content=AssistantMessageContent(text=text)
    )
    return ThreadItemUpdatedEvent(item_id=item_id, update=part)


def assistant_message_done(
    item_id: str, thread_id: str, created_at: datetime, text: str
) -> ThreadItemDoneEvent:
    item = AssistantMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=created_at,
        content=[AssistantMessageContent(text=text)],
    )
    return ThreadItemDoneEvent(item=item)


def stream_error(message: str, *, allow_retry: bool = True) -> ErrorEvent:
    # `custom`: the widget shows our message (with the correlation id); with `stream.error`
    # it would show its own localized text instead.
    return ErrorEvent(code="custom", message=message, allow_retry=allow_retry)
