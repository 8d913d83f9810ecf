"""ChatKit's stream vocabulary, built from `chatkit.types` (never re-declared here).

Each function returns the typed ChatKit event (or item) for one step of a turn; the encoder
(`chatrelay.chatkit.encoder`) turns turn events into these and these into JSON.
"""

from __future__ import annotations

from datetime import datetime

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartDone,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    CustomSummary,
    CustomTask,
    ErrorEvent,
    Page,
    ProgressUpdateEvent,
    Thread,
    ThreadCreatedEvent,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
    ThreadUpdatedEvent,
    Workflow,
    WorkflowItem,
    WorkflowTaskAdded,
    WorkflowTaskUpdated,
)
from pydantic import TypeAdapter

THREAD_STREAM_EVENT: TypeAdapter[ThreadStreamEvent] = TypeAdapter(ThreadStreamEvent)
"""Validates any event (transcripts are checked with it)."""


def thread_created(thread_id: str, created_at: datetime, title: str | None) -> ThreadCreatedEvent:
    return ThreadCreatedEvent(
        thread=Thread(id=thread_id, created_at=created_at, title=title, items=Page())
    )


def thread_updated(thread_id: str, created_at: datetime, title: str | None) -> ThreadUpdatedEvent:
    return ThreadUpdatedEvent(
        thread=Thread(id=thread_id, created_at=created_at, title=title, items=Page())
    )


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


def tool_progress(tool_name: str) -> ProgressUpdateEvent:
    return ProgressUpdateEvent(icon="bolt", text=f"Running {tool_name}…")


def tool_task(tool_name: str, *, done: bool, content: str | None = None) -> CustomTask:
    """One tool call, as a task of the turn's workflow item."""
    return CustomTask(
        title=tool_name,
        icon="check-circle" if done else "bolt",
        content=content,
        status_indicator="complete" if done else "loading",
    )


def workflow_added(
    item_id: str, thread_id: str, created_at: datetime, first: CustomTask
) -> ThreadItemAddedEvent:
    workflow = Workflow(type="custom", tasks=[first], expanded=False)
    return ThreadItemAddedEvent(
        item=WorkflowItem(id=item_id, thread_id=thread_id, created_at=created_at, workflow=workflow)
    )


def workflow_task_added(item_id: str, index: int, task: CustomTask) -> ThreadItemUpdatedEvent:
    return ThreadItemUpdatedEvent(
        item_id=item_id, update=WorkflowTaskAdded(task_index=index, task=task)
    )


def workflow_task_updated(item_id: str, index: int, task: CustomTask) -> ThreadItemUpdatedEvent:
    return ThreadItemUpdatedEvent(
        item_id=item_id, update=WorkflowTaskUpdated(task_index=index, task=task)
    )


def workflow_item(
    item_id: str, thread_id: str, created_at: datetime, tasks: list[CustomTask]
) -> WorkflowItem:
    """The finished workflow: how it is streamed at the end and rebuilt on reload."""
    calls = "1 tool call" if len(tasks) == 1 else f"{len(tasks)} tool calls"
    workflow = Workflow(
        type="custom",
        tasks=list(tasks),
        summary=CustomSummary(title=f"Used {calls}", icon="bolt"),
        expanded=False,
    )
    return WorkflowItem(id=item_id, thread_id=thread_id, created_at=created_at, workflow=workflow)


def item_done(item: WorkflowItem) -> ThreadItemDoneEvent:
    return ThreadItemDoneEvent(item=item)
