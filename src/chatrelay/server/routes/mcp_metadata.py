"""RFC 9728 Protected Resource Metadata for `/mcp`: public, cacheable, no token needed.

Every 401 from `/mcp` points here (`WWW-Authenticate: Bearer resource_metadata="..."`), and
MCP clients that skip the header try the path-suffixed well-known URI, then the bare one;
both describe the one protected resource this server has, `/mcp`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from chatrelay.schemas.mcp import ProtectedResourceMetadata
from chatrelay.server.deps import Context
from chatrelay.server.mcp_http import MCP_PATH, METADATA_PATH, resource_url

router = APIRouter(tags=["mcp"])
CACHE_CONTROL = "public, max-age=3600"  # as the mcp SDK's own metadata handler


def _metadata(request: Request, response: Response, context: Context) -> ProtectedResourceMetadata:
    response.headers["Cache-Control"] = CACHE_CONTROL
    issuer = context.settings.auth_issuer
    return ProtectedResourceMetadata(
        resource=resource_url(request.scope),
        authorization_servers=[issuer] if issuer else None,
    )


@router.get(
    METADATA_PATH + MCP_PATH,
    summary="OAuth protected resource metadata of /mcp (RFC 9728)",
    response_model_exclude_none=True,
)
async def mcp_resource_metadata(
    request: Request, response: Response, context: Context
) -> ProtectedResourceMetadata:
    return _metadata(request, response, context)


@router.get(
    METADATA_PATH,
    summary="The same metadata at the bare well-known URI, which clients try last",
    response_model_exclude_none=True,
)
async def resource_metadata(
    request: Request, response: Response, context: Context
) -> ProtectedResourceMetadata:
    return _metadata(request, response, context)
