"""The agent chatrelay runs for every turn, and the run configuration around it."""

from __future__ import annotations

from agents import Agent, ModelProvider, ModelSettings, RunConfig, Tool

from chatrelay.agents.runner import TurnContext
from chatrelay.config import Settings

SYSTEM_PROMPT = (
    "You are a helpful assistant inside a chat widget. Answer concisely and accurately. "
    "When tools are available, use them for anything they cover instead of guessing, confirm "
    "what each action did, and ask a short question when a request is ambiguous."
)


def build_agent(tools: list[Tool] | None = None) -> Agent[TurnContext]:
    return Agent[TurnContext](
        name="chatrelay",
        instructions=SYSTEM_PROMPT,
        tools=tools or [],
        # Chat Completions only reports token usage when asked to.
        model_settings=ModelSettings(include_usage=True),
    )


def build_run_config(settings: Settings, provider: ModelProvider) -> RunConfig:
    return RunConfig(
        model=settings.model,
        model_provider=provider,
        tracing_disabled=not settings.tracing,
        trace_include_sensitive_data=False,
    )
