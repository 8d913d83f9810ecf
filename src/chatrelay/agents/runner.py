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
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseOutputMessage,
    ResponseTextDeltaEvent,
)

from chatrelay.agents.attachments import ReadAttachment, user_content
from chatrelay.agents.offline import OFFLINE_MODEL_NAME
from chatrelay.turns import (
    ModelCall,
    ModelCalls,
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


def _output_messages(response: Response) -> list[dict[str, Any]]:
    """A model response as the GenAI conventions' output messages (only built when recorded)."""
    parts: list[dict[str, Any]] = []
    for item in response.output:
        if isinstance(item, ResponseOutputMessage):
            text = "".join(getattr(part, "text", "") for part in item.content)
            parts.append({"type": "text", "content": text})
        elif isinstance(item, ResponseFunctionToolCall):
            arguments = _parse_arguments(item.arguments)
            parts.append(
                {"type": "tool_call", "id": item.call_id, "name": item.name, "arguments": arguments}
            )
    return [{"role": "assistant", "parts": parts}]


def _parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as GenAI parts: its text, and a note of each attached file."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "input_text":
            parts.append({"type": "text", "content": part.get("text", "")})
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            parts.append({"type": "blob", "modality": str(kind)})
    return parts


class _CallReporter:
    """Tells the turn's trace where each model call begins (the response is created) and
    ends (it is complete, with its usage); a call cut short is ended by the turn's end."""

    def __init__(self, calls: ModelCalls, model: str, items: list[Any]) -> None:
        self._calls = calls
        self._model = model
        self._provider = "chatrelay.offline" if model == OFFLINE_MODEL_NAME else "openai"
        self._items = items
        self._open: ModelCall | None = None

    def see(self, event: object) -> None:
        if not isinstance(event, RawResponsesStreamEvent):
            return
        data = event.data
        if isinstance(data, ResponseCreatedEvent):
            self._open = self._calls.model_call(self._model, self._provider, self._input)
        elif isinstance(data, ResponseCompletedEvent) and self._open is not None:
            response, usage = data.response, data.response.usage
            self._open.finished(
                response_model=response.model or None,
                input_tokens=usage.input_tokens if usage else None,
                output_tokens=usage.output_tokens if usage else None,
                finish_reason="tool_calls"
                if any(isinstance(i, ResponseFunctionToolCall) for i in response.output)
                else "stop",
                output=lambda: _output_messages(response),
            )
            self._open = None

    def _input(self) -> list[dict[str, Any]]:
        return [{"role": item["role"], "parts": _parts(item["content"])} for item in self._items]


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
        config = self.config_for(request)
        result: RunResultStreaming = Runner.run_streamed(
            self.agent,
            items,
            context=TurnContext(request.user_id, request.conversation_id),
            run_config=config,
            max_turns=self._max_turns,
        )
        reporter = (
            _CallReporter(request.calls, str(config.model), items)
            if request.calls.recording
            else None
        )
        try:
            async for event in result.stream_events():
                if reporter is not None:
                    reporter.see(event)
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
