"""Request dependencies as `Annotated` aliases; routes just take them as parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from chatrelay.server.auth import verify_token
from chatrelay.server.context import AppContext
from chatrelay.server.errors import Forbidden


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


Context = Annotated[AppContext, Depends(get_context)]
AuthorizationHeader = Annotated[
    str | None, Header(description="`Bearer <JWT>` (HS256, with `sub` and `exp`)")
]


def authenticate(context: AppContext, authorization: str | None, path_user_id: str) -> str:
    """The verified token's subject, which must be the user named in the path.

    From here on the user id comes from the token alone.
    """
    subject = verify_token(context.settings, authorization)
    if subject != path_user_id:
        raise Forbidden("the token does not belong to this user")
    return subject
