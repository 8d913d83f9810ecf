"""The turn core's model, run with the Agents SDK: `Runner.run_streamed` in, turn events out.

Raw response deltas are forwarded as they arrive (no buffering); run-item events only fill in
tool calls and their results. Whatever stops the consumer (completion, an error, cancellation,
`aclose()`), the run is cancelled in `finally` so no model call outlives its turn. Provider
and SDK failures become `ModelUnavailable`; the core decides what they mean for the turn.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import openai
from agents import Agent, ModelSettings, RunConfig, Runner
from agents.exceptions import AgentsException
from agents.items import ToolCallItem, ToolCallOutputItem
from agents.mcp import MCPServer
from agents.result import RunResultStreaming
from agents.stream_events import RawResponsesStreamEvent, RunItemStreamEvent
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseTextDeltaEvent,
)

from chatrelay.agents.attachments import ReadAttachment, user_content
from chatrelay.turns import (
    ModelEvent,
    ModelRequest,
    ModelUnavailable,
    TextDelta,
    ToolCallArguments,
    ToolCallFinished,
    ToolCallStarted,
    Usage,
)

logger = logging.getLogger("chatrelay.agents")
_NO_TEXT = {"user": "(attachments without text)"}


@dataclass(frozen=True)
class TurnContext:
    """Run context handed to tools: identity comes from the verified token, never the model."""

    user_id: str
    conversation_id: str


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


def _translate(event: object) -> ModelEvent | None:
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
            arguments = _parse_arguments(getattr(raw, "arguments", ""))
            return ToolCallArguments(call_id, name, arguments)
        if isinstance(item, ToolCallOutputItem):
            raw_out = item.raw_item
            call_id = (
                raw_out.get("call_id", "")
                if isinstance(raw_out, dict)
                else getattr(raw_out, "call_id", "")
            )
            return ToolCallFinished(str(call_id), _tool_result(item.output))
    return None


class AgentsTurnModel:
    """`chatrelay.turns.TurnModel` on one agent and its run configuration."""

    def __init__(
        self,
        agent: Agent[TurnContext],
        run_config: RunConfig,
        *,
        tools: MCPServer | None = None,
        max_turns: int = 10,
        read_attachment: ReadAttachment | None = None,
    ) -> None:
        self.agent = agent
        self.run_config = run_config
        self.tools = tools
        """The MCP server the agent's tools call, if any."""
        self._max_turns = max_turns
        self._read_attachment = read_attachment

    def config_for(self, request: ModelRequest) -> RunConfig:
        """The run configuration, with the turn's own model and tool choice if it has them."""
        config = self.run_config
        if request.model is not None:
            config = dataclasses.replace(config, model=request.model)
        if request.tool_choice is not None:
            config = dataclasses.replace(
                config, model_settings=ModelSettings(tool_choice=request.tool_choice)
            )
        return config

    async def stream(self, request: ModelRequest, usage: Usage) -> AsyncGenerator[ModelEvent, None]:
        # A message sent with attachments and no text is stored without text; its files are
        # not sent again on later turns (only with their own message, or its retry).
        items: list[Any] = [
            {"role": role, "content": content or _NO_TEXT.get(role, content)}
            for role, content in request.history
        ]
        try:
            content = await user_content(request.text, request.attachments, self._read_attachment)
        except OSError as exc:  # the object store is away: worth retrying
            raise ModelUnavailable(f"an attachment could not be read: {exc}") from exc
        items.append({"role": "user", "content": content})
        result: RunResultStreaming = Runner.run_streamed(
            self.agent,
            items,
            context=TurnContext(request.user_id, request.conversation_id),
            run_config=self.config_for(request),
            max_turns=self._max_turns,
        )
        try:
            async for event in result.stream_events():
                translated = _translate(event)
                if translated is not None:
                    yield translated
        except (openai.APIError, AgentsException) as exc:
            raise ModelUnavailable(str(exc)) from exc
        finally:
            totals = result.context_wrapper.usage
            usage.input_tokens = totals.input_tokens
            usage.output_tokens = totals.output_tokens
            usage.total_tokens = totals.total_tokens
            if not result.is_complete:
                result.cancel()
