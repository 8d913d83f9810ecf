"""What the app builds in its lifespan and every request reads (no module-level singletons)."""

from __future__ import annotations

from dataclasses import dataclass

from agents import Agent, ModelProvider, RunConfig
from agents.mcp import MCPServer as AgentsMCPServer
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.types import ASGIApp

from chatrelay.agents import TurnContext
from chatrelay.config import Settings
from chatrelay.server.limits import UserLimits
from chatrelay.server.metrics import Metrics
from chatrelay.server.request_claims import RequestClaims
from chatrelay.server.turn_buffer import TurnBuffer
from chatrelay.server.turns import TurnRegistry


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    provider: ModelProvider
    agent: Agent[TurnContext]
    run_config: RunConfig
    turns: TurnRegistry
    buffer: TurnBuffer
    """Turn events by sequence id, for resuming streams."""
    claims: RequestClaims
    limits: UserLimits
    metrics: Metrics
    """Request ids being served by this process (exactly-once turns)."""
    mcp_http: ASGIApp
    """`/mcp`: the todo MCP server over streamable HTTP, behind bearer auth."""
    todo_mcp: AgentsMCPServer
    """The same server as the agent's tools reach it (in-process MCP)."""
