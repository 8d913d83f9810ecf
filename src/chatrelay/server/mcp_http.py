"""`/mcp`: the todo MCP server over streamable HTTP, for external MCP clients.

Same bearer token as the chat endpoint; the tools act for the token's user, which is handed
to them in the ASGI scope (never taken from the request body or MCP `_meta`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from chatrelay.config import Settings
from chatrelay.server.auth import verify_token
from chatrelay.server.errors import Unauthorized
from chatrelay.server.middleware import send_json
from chatrelay.tools.todo import SCOPE_USER_KEY

MCP_PATH = "/mcp"


@asynccontextmanager
async def streamable_http(server: MCPServer) -> AsyncIterator[ASGIApp]:
    """The server's streamable HTTP transport, running for as long as the block lasts."""
    server.streamable_http_app(
        stateless_http=True,  # any instance can answer any request: no session affinity
        json_response=True,
        # DNS-rebinding protection guards unauthenticated local servers; every request here
        # carries a bearer token, and the Host differs behind each proxy.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    async with server.session_manager.run():
        yield StreamableHTTPASGIApp(server.session_manager)


class AuthenticatedMCP:
    """Pure ASGI: verify the bearer token, then pass the request to the MCP transport."""

    def __init__(self, settings: Settings, transport: ASGIApp) -> None:
        self._settings = settings
        self._transport = transport

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", []))
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        try:
            user_id = verify_token(self._settings, authorization)
        except Unauthorized as error:
            await send_json(send, error.status_code, {"detail": error.detail}, error.headers)
            return
        state = {**scope.get("state", {}), SCOPE_USER_KEY: user_id}
        await self._transport({**scope, "state": state}, receive, send)
