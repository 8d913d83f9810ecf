"""Turn events as ChatKit `ThreadStreamEvent` JSON: the one place that knows that mapping.

One encoder per turn and format (the log shares its output among every reader). It keeps what
ChatKit's items need across events: the thread, the reply's timestamp, the workflow item
that shows tool calls live (added as soon as the model decides to call, completed with the
result, closed when the reply's text begins) and whether the reply's item is open.

Text deltas are most of a stream's events, so they have a fast path that writes the same
bytes as the pydantic model would (a unit test holds the two together).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime

from chatkit.types import CustomTask, StreamOptions, StreamOptionsEvent, ThreadItemDoneEvent
from pydantic import BaseModel

from chatrelay.chatkit import events as ck
from chatrelay.chatkit.items import items_of, result_preview, user_item, workflow_id_for
from chatrelay.turns import (
    AssistantFinished,
    AssistantStarted,
    StoredReply,
    TextDelta,
    TitleSet,
    ToolCallArguments,
    ToolCallFinished,
    ToolCallStarted,
    TurnEnded,
    TurnEvent,
    TurnFailed,
    TurnStarted,
    UserMessageAccepted,
)

# The C string encoder `json.dumps(..., ensure_ascii=False)` uses for a str.
_json_string: Callable[[str], str] = json.encoder.encode_basestring
_TEXT_DELTA_PREFIX = (
    '{"type":"thread.item.updated","item_id":%s,"update":'
    '{"type":"assistant_message.content_part.text_delta","content_index":0,"delta":'
)


def encode_event(event: BaseModel) -> str:
    """JSON for an SSE `data:` field: aliases, no nulls, as chatkit-python writes it."""
    return event.model_dump_json(by_alias=True, exclude_none=True)


def text_delta_prefix(item_id: str) -> str:
    """What every text delta of the item starts with: `prefix + json(delta) + "}}"` is
    `encode_event(text_delta(item_id, delta))`, without building the models."""
    return _TEXT_DELTA_PREFIX % _json_string(item_id)


class _Workflow:
    """The reply's tool calls, as the tasks of one workflow item."""

    def __init__(self, item_id: str, created_at: datetime) -> None:
        self.item_id = item_id
        self.created_at = created_at
        self.tasks: list[CustomTask] = []
        self.index: dict[str, int] = {}
        self.names: list[str] = []
        self.open = True


class ChatKitEncoder:
    def __init__(self) -> None:
        self._thread_id = ""
        self._thread_created_at: datetime | None = None
        self._offer_stop = False
        self._reply_id = ""
        self._reply_at: datetime | None = None
        self._delta_prefix = ""
        self._workflow: _Workflow | None = None
        self._reply_open = False

    def encode(self, event: TurnEvent) -> Sequence[str]:
        if type(event) is TextDelta:  # the hot path
            delta = self._delta_prefix + _json_string(event.text) + "}}"
            return (delta,) if self._reply_open else (*self._open_reply(), delta)
        match event:
            case TurnStarted():
                return self._started(event)
            case UserMessageAccepted():
                item = user_item(
                    event.message_id, self._thread_id, event.text, event.parts, event.created_at
                )
                done = encode_event(ThreadItemDoneEvent(item=item))
                return (done, *self._stream_options())
            case AssistantStarted(message_id=message_id, created_at=created_at):
                self._reply_id, self._reply_at = message_id, created_at
                self._delta_prefix = text_delta_prefix(message_id)
                return ()
            case ToolCallStarted(call_id=call_id, tool_name=name):
                return self._tool_started(call_id, name)
            case ToolCallArguments(call_id=call_id, tool_name=name):
                return self._tool_started(call_id, name)  # already shown, unless never started
            case ToolCallFinished(call_id=call_id, result=result):
                return self._tool_finished(call_id, result)
            case AssistantFinished(text=text, created_at=created_at):
                reply = ck.assistant_message_done(self._reply_id, self._thread_id, created_at, text)
                return (
                    *self._settle(),
                    encode_event(ck.content_part_done(self._reply_id, text)),
                    encode_event(reply),
                )
            case TitleSet(title=title):
                # As ChatKit's server does: the new title once the turn is done.
                assert self._thread_created_at is not None, "titles are set on new threads"
                updated = ck.thread_updated(self._thread_id, self._thread_created_at, title)
                return (encode_event(updated),)
            case TurnFailed(message=message, retryable=retryable):
                error = ck.stream_error(message, allow_retry=retryable)
                return (*self._settle(), encode_event(error))
            case TurnEnded():
                return self._settle()
        return ()

    def _started(self, event: TurnStarted) -> Sequence[str]:
        self._thread_id = event.conversation_id
        self._thread_created_at = event.conversation_created_at
        self._offer_stop = event.offer_stop
        frames: list[str] = []
        if event.new_conversation:
            assert event.conversation_created_at is not None
            frames.append(
                encode_event(
                    ck.thread_created(self._thread_id, event.conversation_created_at, None)
                )
            )
        if event.retry:  # no user message follows
            frames.extend(self._stream_options())
        return frames

    def _stream_options(self) -> Sequence[str]:
        if not self._offer_stop:
            return ()
        # The widget may show its stop button; a stop is POST .../cancel (see README).
        return (encode_event(StreamOptionsEvent(stream_options=StreamOptions(allow_cancel=True))),)

    def _open_reply(self) -> Sequence[str]:
        """The reply's item, once it has started: tool work is over once its text begins."""
        if self._reply_open or self._reply_at is None:
            return ()
        self._reply_open = True
        added = ck.assistant_message_added(self._reply_id, self._thread_id, self._reply_at)
        return (
            *self._close_workflow(),
            encode_event(added),
            encode_event(ck.content_part_added(self._reply_id)),
        )

    def _settle(self) -> Sequence[str]:
        """At the end: the workflow is done (even one started after the text), and a reply
        that started has its item."""
        return (*self._close_workflow(), *self._open_reply())

    def _tool_started(self, call_id: str, name: str) -> Sequence[str]:
        workflow = self._workflow
        if workflow is not None and call_id in workflow.index:
            return ()
        task = ck.tool_task(name, done=False)
        progress = encode_event(ck.tool_progress(name))
        if workflow is None:
            assert self._reply_at is not None, "a tool call starts the reply"
            workflow = self._workflow = _Workflow(workflow_id_for(self._reply_id), self._reply_at)
            shown: BaseModel = ck.workflow_added(
                workflow.item_id, self._thread_id, workflow.created_at, task
            )
        else:
            shown = ck.workflow_task_added(workflow.item_id, len(workflow.tasks), task)
        workflow.index[call_id] = len(workflow.tasks)
        workflow.tasks.append(task)
        workflow.names.append(name)
        return (progress, encode_event(shown))

    def _tool_finished(self, call_id: str, result: object) -> Sequence[str]:
        workflow = self._workflow
        if workflow is None or call_id not in workflow.index:
            return ()
        index = workflow.index[call_id]
        task = ck.tool_task(workflow.names[index], done=True, content=result_preview(result))
        workflow.tasks[index] = task
        if not workflow.open:
            return ()
        return (encode_event(ck.workflow_task_updated(workflow.item_id, index, task)),)

    def _close_workflow(self) -> Sequence[str]:
        workflow = self._workflow
        if workflow is None or not workflow.open:
            return ()
        workflow.open = False
        item = ck.workflow_item(
            workflow.item_id, self._thread_id, workflow.created_at, workflow.tasks
        )
        return (encode_event(ck.item_done(item)),)


class _ChatKitFormat:
    """ChatKit's `ThreadStreamEvent`s, each as the JSON of one SSE `data:` field."""

    name = "chatkit"

    def encoder(self) -> ChatKitEncoder:
        return ChatKitEncoder()


CHATKIT = _ChatKitFormat()


def stored_reply_events(stored: StoredReply) -> list[str]:
    """A committed turn as finished items (no model run, no deltas): what a repeated
    request id streams once its turn is stored."""
    items = [*items_of(stored.request), *items_of(stored.reply)]
    return [encode_event(ThreadItemDoneEvent(item=item)) for item in items]
