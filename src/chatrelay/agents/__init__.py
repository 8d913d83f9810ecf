"""Agents SDK integration: the turn runner, model providers and the offline model.

Imported as `chatrelay.agents` (absolute imports only), so it never shadows the SDK's `agents`.
"""

from chatrelay.agents.offline import CommandRecognizer, OfflineModel, ToolCallIntent
from chatrelay.agents.providers import ChatrelayModelProvider
from chatrelay.agents.runner import (
    RunEvent,
    RunTrace,
    TextDelta,
    ToolCalled,
    ToolCallStarted,
    ToolReturned,
    TurnContext,
    UsageTotals,
    run_agent,
)

__all__ = [
    "ChatrelayModelProvider",
    "CommandRecognizer",
    "OfflineModel",
    "RunEvent",
    "RunTrace",
    "TextDelta",
    "ToolCallIntent",
    "ToolCallStarted",
    "ToolCalled",
    "ToolReturned",
    "TurnContext",
    "UsageTotals",
    "run_agent",
]
