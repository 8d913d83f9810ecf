"""The agent chatrelay runs for every turn, and the run configuration around it."""

from __future__ import annotations

from agents import Agent, ModelProvider, ModelSettings, RunConfig, Tool
from agents.mcp import MCPServer

from chatrelay.agents.runner import TurnContext
from chatrelay.config import Settings

SYSTEM_PROMPT = """\
You are the assistant in a chat widget, and you keep the user's todo list with your tools.

- Use the tools for anything about tasks; never claim a change you did not make with a tool.
- Task ids come from list_tasks. When the user names a task by its title rather than its id,
  call list_tasks first; if several tasks match, ask which one they mean.
- After every change, confirm in one short sentence what you did, with the task's id and title.
- If a tool reports an error, say what went wrong plainly and suggest the next step.
- Ask a short question when a request is ambiguous (which task? what title?) instead of guessing.
- Deleting is permanent: if the user's intent to delete is unclear, ask before you do it.
- Keep answers brief; list tasks one per line, as "[x] 3: title" for done and "[ ] 4: title".
"""


def build_agent(
    tools: list[Tool] | None = None, mcp_servers: list[MCPServer] | None = None
) -> Agent[TurnContext]:
    return Agent[TurnContext](
        name="chatrelay",
        instructions=SYSTEM_PROMPT,
        tools=tools or [],
        mcp_servers=mcp_servers or [],
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
