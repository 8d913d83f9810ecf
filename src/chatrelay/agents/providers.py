"""Model providers: offline, OpenAI (Responses or Chat Completions), any compatible server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import httpx
from agents import (
    Model,
    ModelProvider,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
)
from openai import AsyncOpenAI

from chatrelay.agents.offline import (
    OFFLINE_MODEL_NAME,
    CommandRecognizer,
    OfflineModel,
    ResultConfirmer,
)
from chatrelay.config import Settings

# OpenAI-compatible servers (vLLM, Ollama...) usually ignore the key, but the client wants one.
_PLACEHOLDER_KEY = "not-needed"


class ChatrelayModelProvider(ModelProvider):
    """Resolves a model name: `offline` locally, anything else through the OpenAI client.

    The OpenAI client is built on first use, so an offline-only server never needs a key;
    tests hand in an `httpx` client with a mock transport.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http_client: httpx.AsyncClient | None = None,
        recognizers: Sequence[CommandRecognizer] = (),
        confirmers: Sequence[ResultConfirmer] = (),
    ) -> None:
        self._settings = settings
        self._http_client = http_client
        self._offline = OfflineModel(
            recognizers, confirmers, delay_seconds=settings.offline_delay_seconds
        )
        self._client: AsyncOpenAI | None = None

    def get_model(self, model_name: str | None) -> Model:
        name = model_name or self._settings.model
        if name == OFFLINE_MODEL_NAME:
            return self._offline
        if self._settings.openai_api == "chat_completions":
            return OpenAIChatCompletionsModel(model=name, openai_client=self._openai())
        return OpenAIResponsesModel(model=name, openai_client=self._openai())

    def _openai(self) -> AsyncOpenAI:
        if self._client is None:
            settings = self._settings
            api_key = settings.openai_api_key or (
                _PLACEHOLDER_KEY if settings.openai_base_url else None
            )
            self._client = AsyncOpenAI(
                api_key=api_key,
                base_url=settings.openai_base_url,
                # openai 3 types this as httpx2's client but accepts httpx's at run time.
                http_client=cast(Any, self._http_client),
                max_retries=0,  # a retry is the user's call (ChatKit's allow_retry), not ours
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
