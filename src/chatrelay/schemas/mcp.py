"""What `/mcp` publishes about itself: its OAuth 2.0 Protected Resource Metadata."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ProtectedResourceMetadata(BaseModel):
    """RFC 9728 §2 metadata of `/mcp`, where an MCP client learns who issues its tokens."""

    resource: str
    """The absolute URL of `/mcp`, as the client reached the server."""
    authorization_servers: list[str] | None = None
    """`[AUTH_ISSUER]`, verbatim (issuers compare as exact strings); absent when unset."""
    bearer_methods_supported: list[Literal["header"]] = ["header"]
    """Only `Authorization: Bearer`; MCP forbids tokens in the query string."""
    resource_name: str = "chatrelay"
