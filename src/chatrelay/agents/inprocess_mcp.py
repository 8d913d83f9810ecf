"""An Agents SDK MCP server backed by an MCP server in this same process.

The agent reaches the todo tools through real MCP (`mcp.Client` on the server object, which
dispatches in-process), so the tools behave exactly as they do for external clients on
`/mcp`, without a subprocess or a network hop per call. The acting user travels from the
turn's `TurnContext` (never from the model) as MCP `_meta`, and is bound for the call.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, AsyncExitStack
from typing import Any

from agents import AgentBase, RunContextWrapper, Tool
from agents.mcp import MCPServer as AgentsMCPServer
from agents.mcp.util import MCPToolMetaContext, MCPUtil
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, GetPromptResult, ListPromptsResult
from mcp.types import Tool as MCPTool

from chatrelay.agents.runner import TurnContext

USER_META_KEY = "chatrelay/user_id"

ActAs = Callable[[str], AbstractContextManager[None]]


def _user_meta(context: MCPToolMetaContext) -> dict[str, Any]:
    turn = context.run_context.context
    if not isinstance(turn, TurnContext):
        raise RuntimeError("MCP tools run only inside a chatrelay turn")
    return {USER_META_KEY: turn.user_id}


class InProcessMCPServer(AgentsMCPServer):
    """Connect once (app lifespan); shared by every turn. The tool list is cached."""

    def __init__(self, server: MCPServer, act_as: ActAs) -> None:
        super().__init__(use_structured_content=True, tool_meta_resolver=_user_meta)
        self._server = server
        self._act_as = act_as
        self._stack: AsyncExitStack | None = None
        self._client: Client | None = None
        self._tools: list[MCPTool] | None = None

    @property
    def name(self) -> str:
        return self._server.name

    async def connect(self) -> None:
        self._stack = AsyncExitStack()
        self._client = await self._stack.enter_async_context(Client(self._server))

    async def cleanup(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = self._client = None

    def _connected(self) -> Client:
        if self._client is None:
            raise RuntimeError(f"MCP server {self.name} is not connected")
        return self._client

    async def list_tools(
        self,
        run_context: RunContextWrapper[Any] | None = None,
        agent: AgentBase | None = None,
    ) -> list[MCPTool]:
        if self._tools is None:
            self._tools = list((await self._connected().list_tools()).tools)
        return self._tools

    async def call_tool(
        self,
        tool_name: str,
        arguments: dict[str, Any] | None,
        meta: dict[str, Any] | None = None,
    ) -> CallToolResult:
        # Our resolver's `_meta` is the only one; it is consumed here, never forwarded.
        user_id = (meta or {}).get(USER_META_KEY)
        if not isinstance(user_id, str):
            raise RuntimeError("an in-process MCP call needs the turn's user")
        with self._act_as(user_id):
            return await self._connected().call_tool(tool_name, arguments or {})

    async def list_prompts(self) -> ListPromptsResult:
        return await self._connected().list_prompts()

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None
    ) -> GetPromptResult:
        return await self._connected().get_prompt(name, arguments)


async def function_tools(server: AgentsMCPServer, agent: AgentBase) -> list[Tool]:
    """`server`'s tools as the Agents SDK function tools that call them over MCP, built once.

    Given as `mcp_servers=`, the SDK lists and converts them again on every run (~18 KiB and
    ~0.3 ms per turn); given as `tools=`, each call still goes through `server.call_tool`,
    with the acting user resolved from that run's context by the server's meta resolver.
    """
    strict = bool(agent.mcp_config.get("convert_schemas_to_strict", False))
    return await MCPUtil.get_function_tools(server, strict, RunContextWrapper(context=None), agent)
