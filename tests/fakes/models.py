"""Fake models and providers: real `agents.Model`s that fail, wait or record on cue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
from agents import Model, ModelProvider, ModelResponse
from agents.items import TResponseStreamEvent
from openai.types.responses import ResponseTextDeltaEvent

from chatrelay.agents import OfflineModel


def connection_error() -> openai.APIConnectionError:
    return openai.APIConnectionError(
        request=httpx.Request("POST", "https://api.openai.com/v1/responses")
    )


class FaultyModel(Model):
    """The offline model, with a fault injected after `after_deltas` text deltas.

    `error` is raised there; or, with `gate`, the stream waits for the gate to open.
    `calls` records every input the model saw.
    """

    def __init__(
        self,
        *,
        after_deltas: int = 0,
        error: BaseException | None = None,
        gate: asyncio.Event | None = None,
    ) -> None:
        self._inner = OfflineModel()
        self._after = after_deltas
        self._error = error
        self.gate = gate
        self.reached = asyncio.Event()
        self.ended = asyncio.Event()
        """Set when a model call's stream is over, however it ended."""
        self.calls: list[Any] = []
        self.closed = False

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        raise NotImplementedError("chatrelay always streams")

    async def stream_response(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        self.calls.append(args[1])
        deltas = 0
        try:
            async for event in self._inner.stream_response(*args, **kwargs):
                if isinstance(event, ResponseTextDeltaEvent):
                    if deltas == self._after:
                        self.reached.set()
                        if self._error is not None:
                            raise self._error
                        if self.gate is not None:
                            await self.gate.wait()
                    deltas += 1
                yield event
        finally:
            self.closed = True
            self.ended.set()


class SingleModelProvider(ModelProvider):
    """Answers every model name with one model."""

    def __init__(self, model: Model) -> None:
        self.model = model

    def get_model(self, model_name: str | None) -> Model:
        return self.model
