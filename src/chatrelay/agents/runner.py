"""Run one turn with `Runner.run_streamed` and translate its stream into our own small events.

Raw response deltas are forwarded as they arrive (no buffering); run-item events only fill in
tool calls and their results. Whatever stops the consumer (completion, an error, cancellation,
`aclose()`), the run is cancelled in `finally` so no model call outlives its turn.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from agents import Agent, RunConfig, Runner
from agents.items import ToolCallItem, ToolCallOutputItem
from agents.result import RunResultStreaming
from agents.stream_events import RawResponsesStreamEvent, RunItemStreamEvent
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseTextDeltaEvent,
)

logger = logging.getLogger("chatrelay.agents")


@dataclass(frozen=True)
class TurnContext:
    """Run context handed to tools: identity comes from the verified token, never the model."""

    user_id: str
    conversation_id: str


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    """The model has just decided to call a tool (its arguments are still streaming)."""

    call_id: str
    tool_name: str


@dataclass(frozen=True)
class ToolCalled:
    call_id: str
    tool_name: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolReturned:
    call_id: str
    result: Any


RunEvent = TextDelta | ToolCallStarted | ToolCalled | ToolReturned


@dataclass
class UsageTotals:
    """The provider's own token counts, summed over the turn's model calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, usage: Usage) -> UsageTotals:
        return cls(usage.input_tokens, usage.output_tokens, usage.total_tokens)


@dataclass
class RunTrace:
    """What a run produced so far; still meaningful when the run failed halfway."""

    usage: UsageTotals = field(default_factory=UsageTotals)


def _parse_arguments(arguments: str) -> dict[str, Any]:
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {"_raw": arguments}
    return parsed if isinstance(parsed, dict) else {"_value": parsed}


def _tool_result(output: Any) -> Any:
    """A tool's output as a value: structured JSON parsed, MCP text parts unwrapped."""
    if isinstance(output, dict) and output.get("type") == "text":
        output = output.get("text", "")
    if isinstance(output, list):
        output = "".join(str(part.get("text", "")) for part in output if isinstance(part, dict))
    if isinstance(output, str):
        try:
            return json.loads(output)
        except json.JSONDecodeError:
            return output
    return output


def _translate(event: object) -> RunEvent | None:
    if isinstance(event, RawResponsesStreamEvent):
        data = event.data
        if isinstance(data, ResponseTextDeltaEvent) and data.delta:
            return TextDelta(data.delta)
        # The early signal: run-item events only come once the model's response is complete.
        if isinstance(data, ResponseOutputItemAddedEvent) and isinstance(
            data.item, ResponseFunctionToolCall
        ):
            return ToolCallStarted(data.item.call_id, data.item.name)
        return None
    if isinstance(event, RunItemStreamEvent):
        item = event.item
        if isinstance(item, ToolCallItem):
            raw = item.raw_item
            name = getattr(raw, "name", None) or type(raw).__name__
            call_id = getattr(raw, "call_id", None) or getattr(raw, "id", None) or ""
            return ToolCalled(call_id, name, _parse_arguments(getattr(raw, "arguments", "")))
        if isinstance(item, ToolCallOutputItem):
            raw_out = item.raw_item
            call_id = (
                raw_out.get("call_id", "")
                if isinstance(raw_out, dict)
                else getattr(raw_out, "call_id", "")
            )
            return ToolReturned(str(call_id), _tool_result(item.output))
    return None


async def run_agent(
    agent: Agent[TurnContext],
    input_items: list[Any],
    context: TurnContext,
    run_config: RunConfig,
    trace: RunTrace,
    *,
    max_turns: int = 10,
) -> AsyncGenerator[RunEvent, None]:
    """Stream a run's events; `trace.usage` holds the run's usage once the stream is closed
    (consume it inside `contextlib.aclosing`, so that happens when the loop ends)."""
    result: RunResultStreaming = Runner.run_streamed(
        agent, input_items, context=context, run_config=run_config, max_turns=max_turns
    )
    try:
        async for event in result.stream_events():
            translated = _translate(event)
            if translated is not None:
                yield translated
    finally:
        trace.usage = UsageTotals.of(result.context_wrapper.usage)
        if not result.is_complete:
            result.cancel()
