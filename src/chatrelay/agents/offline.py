"""The `offline` model: a deterministic Agents SDK `Model` that needs no network or API key.

It answers any message with a fixed sentence that repeats the user's words, streamed one word
per delta, so a 200-word message gives about 200 deltas (the benchmarks rely on this). It can
also issue function tool calls: a `CommandRecognizer` maps a user message to a call of one of
the tools the agent offers, and once the tool's output comes back the model confirms it in text.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agents import Model, ModelResponse, ModelSettings, ModelTracing, Tool, Usage
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import TResponseInputItem, TResponseStreamEvent
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from chatrelay.agents.attachments import LABEL

OFFLINE_MODEL_NAME = "offline"
_WORD_WITH_SPACE = re.compile(r"\S+\s*")
REPLY_PREFIX = "This is chatrelay's offline model. You said:"


@dataclass(frozen=True)
class ToolCallIntent:
    """A tool call the offline model decided to make."""

    tool_name: str
    arguments: dict[str, Any]


CommandRecognizer = Callable[[str], ToolCallIntent | None]
"""Maps the user's latest message to a tool call, or None when it is not a command."""

ResultConfirmer = Callable[[str, str], str | None]
"""Turns `(tool name, tool output)` into the confirmation the model says, or None."""


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _words(text: str) -> list[str]:
    return text.split()


def _text_of(item: TResponseInputItem) -> str:
    return _read_content(item)[0]


def _read_content(item: TResponseInputItem) -> tuple[str, list[tuple[str, str]]]:
    """The user's own text, and `(kind, name)` of each attachment (a part after its label,
    see `chatrelay.agents.attachments`)."""
    content = item.get("content")
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        return "", []
    texts: list[str] = []
    attached: list[tuple[str, str]] = []
    parts = [part for part in content if isinstance(part, dict)]
    index = 0
    while index < len(parts):
        text = str(parts[index].get("text", ""))
        found = LABEL.match(text) if parts[index].get("type") == "input_text" else None
        if found is not None and index + 1 < len(parts):
            attached.append((found.group(1), found.group(2)))
            index += 2
            continue
        texts.append(text)
        index += 1
    return " ".join(texts), attached


def received(attached: list[tuple[str, str]]) -> str:
    """`I received 1 image: cat.png.`, `I received 2 images: a.png, b.png and 1 file: c.pdf.`"""
    groups = []
    for kind in ("image", "file"):
        names = [name for k, name in attached if k == kind]
        if names:
            noun = kind if len(names) == 1 else f"{kind}s"
            groups.append(f"{len(names)} {noun}: {', '.join(names)}")
    return f"I received {' and '.join(groups)}."


def _output_text(output: object) -> str:
    """A function_call_output's output: a string, or a list of content parts."""
    if isinstance(output, list):
        return "".join(str(part.get("text", "")) for part in output if isinstance(part, dict))
    return str(output)


def _count_tokens(input: str | list[TResponseInputItem]) -> int:
    """A deterministic stand-in for a tokenizer: whitespace-separated words."""
    if isinstance(input, str):
        return len(_words(input))
    return sum(len(_words(_text_of(item))) for item in input)


def _usage(input_tokens: int, output_tokens: int) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
    )


def _response(output: list[Any], usage: ResponseUsage | None, status: str) -> Response:
    return Response(
        id=_new_id("resp"),
        created_at=0,
        model=OFFLINE_MODEL_NAME,
        object="response",
        output=output,
        tool_choice="auto",
        tools=[],
        parallel_tool_calls=False,
        status=status,  # type: ignore[arg-type]
        usage=usage,
    )


class OfflineModel(Model):
    """Deterministic replies and, through recognizers, deterministic tool calls."""

    def __init__(
        self,
        recognizers: Sequence[CommandRecognizer] = (),
        confirmers: Sequence[ResultConfirmer] = (),
        *,
        delay_seconds: float = 0.0,
    ) -> None:
        self._recognizers = tuple(recognizers)
        self._confirmers = tuple(confirmers)
        self._delay = delay_seconds

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        final: Response | None = None
        async for event in self.stream_response(
            system_instructions,
            input,
            model_settings,
            tools,
            output_schema,
            handoffs,
            tracing,
            previous_response_id=previous_response_id,
            conversation_id=conversation_id,
            prompt=prompt,
        ):
            if isinstance(event, ResponseCompletedEvent):
                final = event.response
        assert final is not None and final.usage is not None
        usage = Usage(
            requests=1,
            input_tokens=final.usage.input_tokens,
            output_tokens=final.usage.output_tokens,
            total_tokens=final.usage.total_tokens,
        )
        return ModelResponse(output=final.output, usage=usage, response_id=final.id)

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        items: list[TResponseInputItem] = (
            [{"role": "user", "content": input}] if isinstance(input, str) else input
        )
        input_tokens = _count_tokens(input)
        yield ResponseCreatedEvent(
            type="response.created",
            response=_response([], None, "in_progress"),
            sequence_number=0,
        )
        intent = self._intent(items, tools)
        if intent is not None:
            async for event in self._stream_tool_call(intent, input_tokens):
                yield event
            return
        async for event in self._stream_text(self._reply(items), input_tokens):
            yield event

    def _intent(self, items: list[TResponseInputItem], tools: list[Tool]) -> ToolCallIntent | None:
        last = items[-1] if items else None
        if last is None or last.get("role") != "user":
            return None  # after a tool's output, answer in text
        offered = {tool.name for tool in tools}
        text = _text_of(last)
        for recognize in self._recognizers:
            intent = recognize(text)
            if intent is not None and intent.tool_name in offered:
                return intent
        return None

    def _reply(self, items: list[TResponseInputItem]) -> str:
        last = items[-1] if items else None
        if last is not None and last.get("type") == "function_call_output":
            return self._confirm(items, last)
        user_text, attached = next(
            (_read_content(item) for item in reversed(items) if item.get("role") == "user"),
            ("", []),
        )
        if not attached:
            return f"{REPLY_PREFIX} {user_text}"
        if not user_text:
            return received(attached)
        return f"{received(attached)} {REPLY_PREFIX} {user_text}"

    def _confirm(self, items: list[TResponseInputItem], result: TResponseInputItem) -> str:
        output = _output_text(result.get("output"))
        call_id = result.get("call_id")
        tool_name = next(
            (
                str(item.get("name"))
                for item in items
                if item.get("type") == "function_call" and item.get("call_id") == call_id
            ),
            "",
        )
        for confirm in self._confirmers:
            sentence = confirm(tool_name, output)
            if sentence is not None:
                return sentence
        return f"Done. The tool answered: {output}"

    async def _stream_text(
        self, text: str, input_tokens: int
    ) -> AsyncIterator[TResponseStreamEvent]:
        item_id = _new_id("msg")
        # One delta per word, each carrying the whitespace after it, so newlines survive.
        deltas = _WORD_WITH_SPACE.findall(text.strip())
        full_text = "".join(deltas)
        seq = 1
        empty = ResponseOutputMessage(
            id=item_id, content=[], role="assistant", status="in_progress", type="message"
        )
        yield ResponseOutputItemAddedEvent(
            type="response.output_item.added", item=empty, output_index=0, sequence_number=seq
        )
        part = ResponseOutputText(text="", annotations=[], type="output_text", logprobs=[])
        seq += 1
        yield ResponseContentPartAddedEvent(
            type="response.content_part.added",
            item_id=item_id,
            output_index=0,
            content_index=0,
            part=part,
            sequence_number=seq,
        )
        for delta in deltas:
            seq += 1
            yield ResponseTextDeltaEvent(
                type="response.output_text.delta",
                item_id=item_id,
                output_index=0,
                content_index=0,
                delta=delta,
                logprobs=[],
                sequence_number=seq,
            )
            await asyncio.sleep(self._delay)  # a real model yields to the loop between tokens
        done_part = part.model_copy(update={"text": full_text})
        message = empty.model_copy(update={"content": [done_part], "status": "completed"})
        for event in _text_done_events(message, done_part, seq):
            yield event
        yield ResponseCompletedEvent(
            type="response.completed",
            response=_response([message], _usage(input_tokens, len(deltas)), "completed"),
            sequence_number=seq + 4,
        )

    async def _stream_tool_call(
        self, intent: ToolCallIntent, input_tokens: int
    ) -> AsyncIterator[TResponseStreamEvent]:
        arguments = json.dumps(intent.arguments)
        call = ResponseFunctionToolCall(
            id=_new_id("fc"),
            call_id=_new_id("call"),
            name=intent.tool_name,
            arguments=arguments,
            type="function_call",
            status="completed",
        )
        yield ResponseOutputItemAddedEvent(
            type="response.output_item.added",
            item=call.model_copy(update={"arguments": "", "status": "in_progress"}),
            output_index=0,
            sequence_number=1,
        )
        yield ResponseFunctionCallArgumentsDeltaEvent(
            type="response.function_call_arguments.delta",
            item_id=call.id or "",
            output_index=0,
            delta=arguments,
            sequence_number=2,
        )
        yield ResponseOutputItemDoneEvent(
            type="response.output_item.done", item=call, output_index=0, sequence_number=3
        )
        yield ResponseCompletedEvent(
            type="response.completed",
            response=_response([call], _usage(input_tokens, len(_words(arguments))), "completed"),
            sequence_number=4,
        )


def _text_done_events(
    message: ResponseOutputMessage, part: ResponseOutputText, seq: int
) -> tuple[TResponseStreamEvent, ...]:
    """What closes a streamed text message whose last delta had sequence number `seq`."""
    return (
        ResponseTextDoneEvent(
            type="response.output_text.done",
            item_id=message.id,
            output_index=0,
            content_index=0,
            text=part.text,
            logprobs=[],
            sequence_number=seq + 1,
        ),
        ResponseContentPartDoneEvent(
            type="response.content_part.done",
            item_id=message.id,
            output_index=0,
            content_index=0,
            part=part,
            sequence_number=seq + 2,
        ),
        ResponseOutputItemDoneEvent(
            type="response.output_item.done",
            item=message,
            output_index=0,
            sequence_number=seq + 3,
        ),
    )
