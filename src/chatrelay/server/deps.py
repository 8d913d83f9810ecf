"""Request dependencies as `Annotated` aliases; routes just take them as parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.server.auth import verify_token
from chatrelay.server.context import AppContext
from chatrelay.server.errors import Forbidden, NotFound
from chatrelay.store import Conversation
from chatrelay.store.repositories import ConversationRepository


async def get_context(request: Request) -> AppContext:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a hop on every request.
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


async def owned_conversation(
    db: AsyncSession, user_id: str, conversation_id: str, *, what: str = "conversation"
) -> Conversation:
    """The user's conversation, or 404: another user's id answers exactly like a missing one."""
    conversation = await ConversationRepository(db, user_id).get(conversation_id)
    if conversation is None:
        raise NotFound(f"{what} not found")
    return conversation
