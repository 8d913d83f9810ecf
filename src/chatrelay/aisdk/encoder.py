"""Turn events as the AI SDK's UI message stream parts (`ai` 7.x, `uiMessageChunkSchema`).

One encoder per turn (the log shares its output among every reader). Each item is the JSON
of one SSE `data:` field, and the last is `[DONE]`, as the SDK's `JsonToSseTransformStream`
writes it. The reply is one assistant message (`start` with its id) in one step; its text
is a text part per run of deltas (a tool call between two runs closes the first), and tool
calls are `dynamic` tool parts: the tools run on the server (MCP), the client declares none.

A stopped turn finishes with `finishReason: "interrupted"`, a failed one with an `error`
part, then `finishReason: "error"`. Encoders are pure functions of the events so far, so a
resume (the same items by id) reads exactly what the first reader read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from chatrelay.turns import (
    AssistantFinished,
    AssistantStarted,
    Failure,
    StoredReply,
    TextDelta,
    ToolCallArguments,
    ToolCallFinished,
    ToolCallStarted,
    TurnEnded,
    TurnEvent,
    TurnFailed,
)

DONE = "[DONE]"
"""The stream's last `data:` field."""

STREAM_HEADERS = {"x-vercel-ai-ui-message-stream": "v1"}
"""What the SDK's `UI_MESSAGE_STREAM_HEADERS` adds to an SSE response."""

_json_string: Callable[[str], str] = json.encoder.encode_basestring
_DELTA_PREFIX = '{{"type":"text-delta","id":{},"delta":'
"""`prefix + json(delta) + "}"` is `part("text-delta", id=..., delta=delta)`, without a dict."""


def part(type_: str, **fields: Any) -> str:
    """One part as compact JSON (the field names are the SDK's, camelCase)."""
    return json.dumps({"type": type_, **fields}, ensure_ascii=False, separators=(",", ":"))


def _finish_reason(failure: Failure | None) -> str:
    if failure is None:
        return "stop"
    return "interrupted" if failure is Failure.STOPPED else "error"


class AiSdkEncoder:
    def __init__(self) -> None:
        self._message_id = ""
        self._started = False
        self._text_id: str | None = None
        self._text_count = 0
        self._delta_prefix = ""
        self._tools: set[str] = set()
        self._inputs: set[str] = set()

    def encode(self, event: TurnEvent) -> Sequence[str]:
        if type(event) is TextDelta:  # the hot path: most of a stream's events
            if self._text_id is not None:
                return (self._delta_prefix + _json_string(event.text) + "}",)
            opened = self._open_text()
            return (*opened, self._delta_prefix + _json_string(event.text) + "}")
        match event:
            case AssistantStarted(message_id=message_id):
                self._message_id = message_id
                return ()
            case ToolCallStarted(call_id=call_id, tool_name=name):
                return self._tool_started(call_id, name)
            case ToolCallArguments(call_id=call_id, tool_name=name, arguments=arguments):
                if call_id in self._inputs:
                    return ()
                self._inputs.add(call_id)
                available = part(
                    "tool-input-available",
                    toolCallId=call_id,
                    toolName=name,
                    input=arguments,
                    dynamic=True,
                )
                return (*self._tool_started(call_id, name), available)
            case ToolCallFinished(call_id=call_id, result=result):
                if call_id not in self._tools:
                    return ()
                output = part("tool-output-available", toolCallId=call_id, output=result)
                return (output,)
            case AssistantFinished(message_id=message_id):
                self._message_id = self._message_id or message_id
                return (*self._start(), *self._close_text())
            case TurnFailed(message=message):
                return (*self._start(), *self._close_text(), part("error", errorText=message))
            case TurnEnded(outcome=outcome):
                return (
                    *self._start(),
                    *self._close_text(),
                    part("finish-step"),
                    part("finish", finishReason=_finish_reason(outcome.failure)),
                    DONE,
                )
        return ()

    def _start(self) -> Sequence[str]:
        """The message and its step, before its first part (or its end, without any)."""
        if self._started:
            return ()
        self._started = True
        start = part("start", messageId=self._message_id) if self._message_id else part("start")
        return (start, part("start-step"))

    def _open_text(self) -> Sequence[str]:
        self._text_count += 1
        text_id = self._text_id = f"{self._message_id or 'text'}_t{self._text_count}"
        self._delta_prefix = _DELTA_PREFIX.format(_json_string(text_id))
        return (*self._start(), part("text-start", id=text_id))

    def _close_text(self) -> Sequence[str]:
        if self._text_id is None:
            return ()
        text_id, self._text_id = self._text_id, None
        return (part("text-end", id=text_id),)

    def _tool_started(self, call_id: str, name: str) -> Sequence[str]:
        if call_id in self._tools:
            return ()
        self._tools.add(call_id)
        started = part("tool-input-start", toolCallId=call_id, toolName=name, dynamic=True)
        return (*self._start(), *self._close_text(), started)


class _AiSdkFormat:
    """The AI SDK's UI message stream parts, each as the JSON of one SSE `data:` field."""

    name = "ai-sdk"

    def encoder(self) -> AiSdkEncoder:
        return AiSdkEncoder()


AI_SDK = _AiSdkFormat()


def stored_reply_parts(stored: StoredReply) -> list[str]:
    """A committed reply as a whole stream (no model run): what a repeated request id gets
    once its turn is stored."""
    reply = stored.reply
    parts = [part("start", messageId=reply.id), part("start-step")]
    for index, call in enumerate(reply.tool_calls):
        call_id = tool_call_id(reply.id, index)
        name = str(call.get("tool_name", ""))
        parts += [
            part("tool-input-start", toolCallId=call_id, toolName=name, dynamic=True),
            part(
                "tool-input-available",
                toolCallId=call_id,
                toolName=name,
                input=call.get("parameters") or {},
                dynamic=True,
            ),
            part("tool-output-available", toolCallId=call_id, output=call.get("result")),
        ]
    if reply.content:
        text_id = f"{reply.id}_t1"
        parts += [
            part("text-start", id=text_id),
            part("text-delta", id=text_id, delta=reply.content),
            part("text-end", id=text_id),
        ]
    reason = {"completed": "stop", "cancelled": "interrupted"}.get(reply.status, "other")
    return [*parts, part("finish-step"), part("finish", finishReason=reason), DONE]


def tool_call_id(message_id: str, index: int) -> str:
    """A stored tool call's id (stored calls keep no provider id): stable per message."""
    return f"{message_id}_call{index}"
