"""The model adapter: the only package that imports the Agents SDK and `openai`.

`AgentsTurnModel` runs a turn with `Runner.run_streamed` and yields the turn core's model
events; the providers resolve model names (OpenAI, any compatible server, the offline model).
Imported as `chatrelay.agents` (absolute imports only), so it never shadows the SDK's `agents`.
"""

from agents import ModelProvider  # the seam tests and embedders use to pick models

from chatrelay.agents.assistant import build_agent, build_run_config
from chatrelay.agents.offline import CommandRecognizer, OfflineModel, ToolCallIntent
from chatrelay.agents.providers import ChatrelayModelProvider
from chatrelay.agents.runner import AgentsTurnModel, TurnContext

__all__ = [
    "AgentsTurnModel",
    "ChatrelayModelProvider",
    "CommandRecognizer",
    "ModelProvider",
    "OfflineModel",
    "ToolCallIntent",
    "TurnContext",
    "build_agent",
    "build_run_config",
]
