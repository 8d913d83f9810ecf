"""`/mcp`: the todo MCP server over streamable HTTP, for external MCP clients.

Same bearer token as the chat endpoint; the tools act for the token's user, which is handed
to them in the ASGI scope (never taken from the request body or MCP `_meta`).

What this edge answers before the SDK's transport sees a request:

- 401 to any method without a valid token, with the RFC 9728 challenge that points an MCP
  client at the Protected Resource Metadata (`server/routes/mcp_metadata.py`); 503 with
  `Retry-After` while the issuer's key set has never been fetched.
- 405 (`Allow: POST`) to anything but POST. The server is stateless, so it has no stream of
  its own messages to offer on GET and no session to end on DELETE: the MCP spec (2025-06-18,
  transports) says to answer 405 then. The SDK (mcp 2.3) still opens an SSE stream on a
  stateless GET that never sends a byte, and clients that open it at connect time hang
  (modelcontextprotocol/python-sdk#2474, #3492); its DELETE answers 405 without `Allow`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from chatrelay.server.auth import verify_token
from chatrelay.server.errors import InvalidToken, ServiceUnavailable, Unauthorized, answer_for
from chatrelay.server.middleware import send_json
from chatrelay.tokens import TokenVerifier
from chatrelay.tools.todo import SCOPE_USER_KEY

MCP_PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"
"""RFC 9728's well-known URI. Served as is and with `/mcp` appended (§3.1: the resource's
path goes after it), which MCP clients try first."""

# A host name (underscores too: compose service names have them), IPv4 or [IPv6], and a port.
_AUTHORITY = re.compile(r"(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d+)?")
# What RFC 6750 §3 allows inside `error_description="..."`.
_NOT_QUOTABLE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_NOT_ALLOWED = {
    "GET": "this MCP server is stateless: it offers no event stream on GET; "
    "POST each JSON-RPC message to /mcp",
    "DELETE": "this MCP server is stateless: there is no session to end",
}


def base_url(scope: Scope) -> str:
    """The app's URL as the client reached it, without a trailing slash.

    The scheme is the ASGI server's (uvicorn takes `X-Forwarded-Proto` from the proxies in
    `FORWARDED_ALLOW_IPS`, loopback only by default), the authority the `Host` header, as
    Starlette's `request.base_url`; a `Host` that is no host name falls back to the address
    the server listens on, so nothing odd lands in a header or the metadata.
    """
    host = Headers(scope=scope).get("host", "")
    if not _AUTHORITY.fullmatch(host):
        name, port = scope.get("server") or ("localhost", None)
        host = name if port in (None, 80, 443) else f"{name}:{port}"
    root_path = str(scope.get("root_path", "")).rstrip("/")
    return f"{scope.get('scheme', 'http')}://{host}{root_path}"


def resource_url(scope: Scope) -> str:
    """The protected resource, `/mcp`: the metadata's `resource`."""
    return base_url(scope) + MCP_PATH


def resource_metadata_url(scope: Scope) -> str:
    """Where its metadata is, as the 401's `resource_metadata` says."""
    return base_url(scope) + METADATA_PATH + MCP_PATH


def challenge(scope: Scope, error: Unauthorized) -> str:
    """The `WWW-Authenticate` value of a 401 from `/mcp` (RFC 9728 §5.1, RFC 6750 §3).

    An error code only when a bad token was presented: a request with no credentials (or
    another scheme) gets the bare challenge, as RFC 6750 §3.1 asks.
    """
    parts = [f'resource_metadata="{resource_metadata_url(scope)}"']
    if isinstance(error, InvalidToken):
        description = _NOT_QUOTABLE.sub("?", error.detail.replace('"', "'"))[:200]
        parts += ['error="invalid_token"', f'error_description="{description}"']
    return "Bearer " + ", ".join(parts)


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
    """Pure ASGI: verify the bearer token, refuse all but POST, then pass the request on.

    The token comes first, whatever the method, as the SDK's own `RequireAuthMiddleware`
    wraps its whole transport: MCP's authorization spec wants it on every request, and a
    client without one learns where to get one rather than what the endpoint does.
    """

    def __init__(self, verifier: TokenVerifier, transport: ASGIApp) -> None:
        self._verifier = verifier
        self._transport = transport

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", []))
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        try:
            user_id = await verify_token(self._verifier, authorization)
        except Unauthorized as error:
            answer = {**error.headers, "WWW-Authenticate": challenge(scope, error)}
            await send_json(send, error.status_code, {"detail": error.detail}, answer)
            return
        except ServiceUnavailable as error:
            unavailable = answer_for(error)
            assert unavailable is not None
            await send_json(send, 503, unavailable.body, dict(unavailable.headers))
            return
        method = scope["method"]
        if method != "POST":
            detail = _NOT_ALLOWED.get(method, f"{method} is not allowed on /mcp; use POST")
            await send_json(send, 405, {"detail": detail}, {"Allow": "POST"})
            return
        state = {**scope.get("state", {}), SCOPE_USER_KEY: user_id}
        await self._transport({**scope, "state": state}, receive, send)
