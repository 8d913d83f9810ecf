"""The agent chatrelay runs for every turn, and the model adapter built around it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from agents import Agent, ModelProvider, ModelSettings, RunConfig, Tool
from mcp.server.mcpserver import MCPServer

from chatrelay.agents.attachments import ReadAttachment
from chatrelay.agents.inprocess_mcp import ActAs, InProcessMCPServer, function_tools
from chatrelay.agents.providers import ChatrelayModelProvider
from chatrelay.agents.runner import AgentsTurnModel, TurnContext
from chatrelay.agents.todo_commands import confirm_todo_result, recognize_todo_command
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


def build_agent(tools: list[Tool]) -> Agent[TurnContext]:
    return Agent[TurnContext](
        name="chatrelay",
        instructions=SYSTEM_PROMPT,
        tools=tools,
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


@asynccontextmanager
async def open_turn_model(
    settings: Settings,
    todo: MCPServer,
    act_as: ActAs,
    provider: ModelProvider | None = None,
    read_attachment: ReadAttachment | None = None,
) -> AsyncIterator[AgentsTurnModel]:
    """The agent with the todo tools (through in-process MCP, acting as each turn's user),
    on `provider` or the configured one; connected for as long as the block lasts."""
    async with AsyncExitStack() as stack:
        if provider is None:
            own = ChatrelayModelProvider(
                settings, recognizers=[recognize_todo_command], confirmers=[confirm_todo_result]
            )
            stack.push_async_callback(own.aclose)
            provider = own
        tools_server = InProcessMCPServer(todo, act_as=act_as)
        await tools_server.connect()
        stack.push_async_callback(tools_server.cleanup)
        agent = build_agent([])
        agent.tools = await function_tools(tools_server, agent)
        yield AgentsTurnModel(
            agent,
            build_run_config(settings, provider),
            tools=tools_server,
            read_attachment=read_attachment,
        )
