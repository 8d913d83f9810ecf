"""`chatrelay.turns.TurnTracer` on OpenTelemetry: a turn span, and under it one span per model
call and per tool call (the GenAI semantic conventions) and one for the commit.

Span names and attributes follow https://opentelemetry.io/docs/specs/semconv/gen-ai/: a model
call is `chat {model}`, a tool call `execute_tool {tool}`, the turn `invoke_agent chatrelay`.
Message content (`gen_ai.input.messages`, `gen_ai.output.messages`, tool arguments and
results) is recorded only with `OTEL_CAPTURE_CONTENT=true`: it is the users' data.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from chatrelay.turns import Failure, Messages, TurnOutcome, TurnSpec

AGENT_NAME = "chatrelay"
_NOT_ERRORS = (None, Failure.STOPPED)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


class _ModelCall:
    def __init__(self, span: Span, capture: bool) -> None:
        self._span = span
        self._capture = capture
        self.done = False

    def finished(
        self,
        *,
        response_model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        finish_reason: str | None,
        output: Messages,
    ) -> None:
        if self.done:
            return
        span = self._span
        if response_model:
            span.set_attribute("gen_ai.response.model", response_model)
        if input_tokens is not None:
            span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        if output_tokens is not None:
            span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        if finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
        if self._capture:
            span.set_attribute("gen_ai.output.messages", _json(output()))
        self.end()

    def end(self, failure: Failure | None = None) -> None:
        if self.done:
            return
        self.done = True
        if failure not in _NOT_ERRORS:
            assert failure is not None
            self._span.set_attribute("error.type", failure.name.lower())
            self._span.set_status(Status(StatusCode.ERROR, failure.value))
        self._span.end()


class OtelTurnTrace:
    """One turn's spans. The turn span's parent is the context current when it was made."""

    recording = True

    def __init__(self, tracer: trace.Tracer, spec: TurnSpec, capture: bool) -> None:
        self._tracer = tracer
        self._spec = spec
        self._capture = capture
        self._parent = otel_context.get_current()
        self._span: Span | None = None
        self._inside: otel_context.Context | None = None
        self._model_calls: list[_ModelCall] = []
        self._tools: dict[str, Span] = {}
        self._commit: Span | None = None

    def started(self) -> None:
        spec = self._spec
        self._span = self._tracer.start_span(
            f"invoke_agent {AGENT_NAME}",
            context=self._parent,
            kind=SpanKind.INTERNAL,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": AGENT_NAME,
                "gen_ai.conversation.id": spec.conversation_id,
                "chatrelay.correlation_id": spec.correlation_id,
                "chatrelay.user.id": spec.user_id,
                "chatrelay.turn.new_conversation": spec.new_conversation,
                "chatrelay.turn.retry": spec.retry,
            },
        )
        self._inside = trace.set_span_in_context(self._span, self._parent)
        # The turn's own task (and the tasks it starts): its log lines carry this span's ids.
        otel_context.attach(self._inside)

    def model_call(self, model: str, provider: str, input: Messages) -> _ModelCall:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.provider.name": provider,
            "gen_ai.system": provider,
            "gen_ai.conversation.id": self._spec.conversation_id,
        }
        if self._capture:
            attributes["gen_ai.input.messages"] = _json(input())
        span = self._tracer.start_span(
            f"chat {model}", context=self._inside, kind=SpanKind.CLIENT, attributes=attributes
        )
        call = _ModelCall(span, self._capture)
        self._model_calls.append(call)
        return call

    def tool_started(self, call_id: str, name: str, arguments: dict[str, Any]) -> None:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": call_id,
            "gen_ai.tool.type": "function",
        }
        if self._capture:
            attributes["gen_ai.tool.call.arguments"] = _json(arguments)
        self._tools[call_id] = self._tracer.start_span(
            f"execute_tool {name}", context=self._inside, attributes=attributes
        )

    def tool_finished(self, call_id: str, result: Any) -> None:
        span = self._tools.pop(call_id, None)
        if span is None:
            return
        if self._capture:
            span.set_attribute("gen_ai.tool.call.result", _json(result))
        span.end()

    def commit_started(self) -> None:
        self._commit = self._tracer.start_span(
            "commit turn",
            context=self._inside,
            attributes={
                "db.operation.name": "commit",
                "gen_ai.conversation.id": self._spec.conversation_id,
            },
        )

    def commit_ended(self, committed: bool) -> None:
        if self._commit is None:
            return
        self._commit.set_attribute("chatrelay.committed", committed)
        if not committed:
            self._commit.set_status(Status(StatusCode.ERROR, Failure.STORAGE.value))
        self._commit.end()
        self._commit = None

    def ended(self, outcome: TurnOutcome) -> None:
        span = self._span
        if span is None:  # never started: nothing was traced
            return
        failure = outcome.failure
        for call in self._model_calls:  # a call cut short by the turn's end
            call.end(failure or Failure.INTERNAL)
        for tool in self._tools.values():
            tool.set_status(Status(StatusCode.ERROR, "the turn ended before the tool did"))
            tool.end()
        self._tools.clear()
        self.commit_ended(outcome.committed)
        ended = "completed" if failure is None else failure.name.lower()
        span.set_attribute("chatrelay.turn.outcome", ended)
        span.set_attribute("chatrelay.turn.committed", outcome.committed)
        span.set_attribute("chatrelay.turn.tool_calls", len(outcome.tool_calls))
        span.set_attribute("gen_ai.usage.input_tokens", outcome.usage.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", outcome.usage.output_tokens)
        if failure is Failure.STOPPED:
            span.add_event("turn.stopped", {"chatrelay.turn.status": outcome.status})
        elif failure is not None:
            span.set_attribute("error.type", ended)
            span.set_status(Status(StatusCode.ERROR, failure.value))
        span.end()


class OtelTurnTracer:
    def __init__(self, tracer: trace.Tracer, *, capture_content: bool = False) -> None:
        self._tracer = tracer
        self.capture_content = capture_content

    def turn(self, spec: TurnSpec) -> OtelTurnTrace:
        return OtelTurnTrace(self._tracer, spec, self.capture_content)
