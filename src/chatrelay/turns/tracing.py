"""The turn core's tracing seam: what a turn tells a tracer, and a tracer that does nothing.

The core imports no tracing library. `chatrelay.telemetry` implements `TurnTracer` with
OpenTelemetry when it is configured; otherwise every turn gets `NO_TRACE`, whose methods do
nothing, so a turn costs the same as before tracing existed.

`TurnTracer.turn()` is called where the turn is started (in the request that starts it), so
the trace it belongs to is captured there, explicitly: the turn runs in a task of its own,
and whoever reads it later (a resume, a repeat of the request) never becomes its parent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from chatrelay.turns.spec import TurnOutcome, TurnSpec

Messages = Callable[[], list[dict[str, Any]]]
"""Message content, in the GenAI conventions' message shape, built only if it is recorded."""


class ModelCall(Protocol):
    """One call to the model, as its adapter sees it."""

    def finished(
        self,
        *,
        response_model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        finish_reason: str | None,
        output: Messages,
    ) -> None: ...


class ModelCalls(Protocol):
    """What a model adapter reports: `recording` False means it need not report anything."""

    @property
    def recording(self) -> bool: ...

    def model_call(self, model: str, provider: str, input: Messages) -> ModelCall: ...


class TurnTrace(ModelCalls, Protocol):
    """One turn's trace. `started` and `ended` run in the turn's own task."""

    def started(self) -> None: ...

    def tool_started(self, call_id: str, name: str, arguments: dict[str, Any]) -> None: ...

    def tool_finished(self, call_id: str, result: Any) -> None: ...

    def commit_started(self) -> None: ...

    def commit_ended(self, committed: bool) -> None: ...

    def ended(self, outcome: TurnOutcome) -> None: ...


class TurnTracer(Protocol):
    def turn(self, spec: TurnSpec) -> TurnTrace:
        """The trace of a turn about to start, as a child of the caller's current span."""
        ...


class _NoCall:
    def finished(self, **_: Any) -> None:
        return None


class _NoTrace:
    recording = False

    def model_call(self, model: str, provider: str, input: Messages) -> ModelCall:
        return _NO_CALL

    def started(self) -> None:
        return None

    def tool_started(self, call_id: str, name: str, arguments: dict[str, Any]) -> None:
        return None

    def tool_finished(self, call_id: str, result: Any) -> None:
        return None

    def commit_started(self) -> None:
        return None

    def commit_ended(self, committed: bool) -> None:
        return None

    def ended(self, outcome: TurnOutcome) -> None:
        return None


class _NoTracer:
    def turn(self, spec: TurnSpec) -> TurnTrace:
        return NO_TRACE


_NO_CALL = _NoCall()
NO_TRACE: TurnTrace = _NoTrace()
NO_TRACER: TurnTracer = _NoTracer()
