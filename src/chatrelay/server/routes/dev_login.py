"""`POST /auth/dev-token`: a token for any user name, for the chat page's quick sign-in.

Routed only with `DEV_LOGIN=true` (so a 404 otherwise), which the settings refuse with
`ENV=production`: whoever reaches this endpoint can act as any user.
"""

from __future__ import annotations

from fastapi import APIRouter

from chatrelay.schemas.dev_login import DevToken, DevTokenRequest
from chatrelay.schemas.errors import ErrorBody
from chatrelay.server.deps import Context
from chatrelay.tokens import mint_token

router = APIRouter(tags=["dev"])

DEV_TOKEN_SECONDS = 8 * 3600  # a working day: the page asks again after that


@router.post(
    "/auth/dev-token",
    summary="Development only (`DEV_LOGIN=true`): mint a token for a user name",
    responses={422: {"model": ErrorBody, "description": "Not a valid user name"}},
)
async def dev_token(context: Context, body: DevTokenRequest) -> DevToken:
    token = mint_token(context.settings, body.user_id, DEV_TOKEN_SECONDS)
    return DevToken(token=token, user_id=body.user_id, expires_in=DEV_TOKEN_SECONDS)
