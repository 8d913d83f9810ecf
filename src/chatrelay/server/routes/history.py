"""The history API for JSON clients: list, read, rename and delete conversations.

On the same repositories as ChatKit's `threads.list` / `items.list`; every lookup goes through
the token's user, so another user's conversation is a 404 exactly like an unknown one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from chatrelay.schemas.chat import ToolCallRecord
from chatrelay.schemas.errors import ErrorBody
from chatrelay.schemas.history import (
    ConversationOut,
    ConversationPage,
    ConversationPatch,
    MessageOut,
    MessagePage,
    usage_of,
)
from chatrelay.server.deps import AuthorizationHeader, Context, authenticate
from chatrelay.server.json_body import JsonBodyRoute
from chatrelay.store import Conversation, Message, transaction
from chatrelay.store.repositories import (
    ConversationRepository,
    LeaseRepository,
    MessageRepository,
)
from chatrelay.store.tables import as_utc
from chatrelay.turns import Conflict, Invalid, NotFound

router = APIRouter(tags=["history"], route_class=JsonBodyRoute)

UserId = Annotated[str, Path(min_length=1, max_length=255)]
ConversationId = Annotated[str, Path(min_length=1, max_length=64)]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size")]
Cursor = Annotated[str | None, Query(min_length=1, max_length=64)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such conversation for this user"}
}


def _conversation(row: Conversation) -> ConversationOut:
    return ConversationOut(
        id=row.id,
        title=row.title,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


def _message(row: Message) -> MessageOut:
    return MessageOut(
        id=row.id,
        role=row.role,
        content=row.content,
        status=row.status,
        created_at=as_utc(row.created_at),
        tool_calls=[ToolCallRecord.model_validate(call) for call in row.tool_calls],
        usage=usage_of(row.usage) if row.role == "assistant" else None,
    )


async def _owned(conversations: ConversationRepository, conversation_id: str) -> Conversation:
    conversation = await conversations.get(conversation_id)
    if conversation is None:
        raise NotFound("conversation not found")
    return conversation


@router.get(
    "/api/{user_id}/conversations",
    summary="The user's conversations, newest first",
    responses={400: {"model": ErrorBody, "description": "`after` is not a conversation"}},
)
async def list_conversations(
    context: Context,
    user_id: UserId,
    authorization: AuthorizationHeader = None,
    limit: Limit = 20,
    after: Cursor = None,
) -> ConversationPage:
    user = await authenticate(context, authorization, user_id)
    async with transaction(context.sessions) as db:
        try:
            rows, more = await ConversationRepository(db, user).page(limit, "desc", after)
        except LookupError:
            raise Invalid("after: no such conversation") from None
    return ConversationPage(
        data=[_conversation(row) for row in rows],
        has_more=more,
        after=rows[-1].id if rows and more else None,
    )


@router.get(
    "/api/{user_id}/conversations/{conversation_id}/messages",
    summary="A conversation's stored messages, paged by `after` or `before` a message id",
    responses={
        **NOT_FOUND,
        400: {"model": ErrorBody, "description": "A cursor that is not a message here"},
    },
)
async def list_messages(
    context: Context,
    user_id: UserId,
    conversation_id: ConversationId,
    authorization: AuthorizationHeader = None,
    limit: Limit = 50,
    order: Annotated[Literal["asc", "desc"], Query(description="By creation time")] = "asc",
    after: Cursor = None,
    before: Cursor = None,
) -> MessagePage:
    user = await authenticate(context, authorization, user_id)
    if after is not None and before is not None:
        raise Invalid("pass after or before, not both")
    async with transaction(context.sessions) as db:
        await _owned(ConversationRepository(db, user), conversation_id)
        try:
            rows, more = await MessageRepository(db).page(
                conversation_id, limit, order, after=after, before=before
            )
        except LookupError as missing:
            which = "after" if after is not None else "before"
            raise Invalid(f"{which}: no message {missing} in this conversation") from None
    return MessagePage(
        data=[_message(row) for row in rows],
        has_more=more,
        first_id=rows[0].id if rows else None,
        last_id=rows[-1].id if rows else None,
    )


@router.patch(
    "/api/{user_id}/conversations/{conversation_id}",
    summary="Rename a conversation (a null title clears it)",
    responses=NOT_FOUND,
)
async def rename_conversation(
    context: Context,
    user_id: UserId,
    conversation_id: ConversationId,
    patch: ConversationPatch,
    authorization: AuthorizationHeader = None,
) -> ConversationOut:
    user = await authenticate(context, authorization, user_id)
    title = patch.title.strip() or None if patch.title is not None else None
    async with transaction(context.sessions) as db:
        conversations = ConversationRepository(db, user)
        owned = await _owned(conversations, conversation_id)
        return _conversation(await conversations.rename(owned, title))


@router.delete(
    "/api/{user_id}/conversations/{conversation_id}",
    summary="Delete a conversation with its messages (refused while a turn runs in it)",
    status_code=204,
    responses={
        **NOT_FOUND,
        409: {"model": ErrorBody, "description": "A turn is running in this conversation"},
    },
)
async def delete_conversation(
    context: Context,
    user_id: UserId,
    conversation_id: ConversationId,
    authorization: AuthorizationHeader = None,
) -> Response:
    user = await authenticate(context, authorization, user_id)
    async with transaction(context.sessions) as db:
        conversations = ConversationRepository(db, user)
        owned = await _owned(conversations, conversation_id)
        # Every turn in an existing conversation holds its lease, on whichever instance it
        # runs (a first turn's conversation only exists once it commits: a 404 above).
        if await LeaseRepository(db).held(conversation_id):
            raise Conflict("a turn is running in this conversation; stop it first")
        await conversations.delete(owned)
    return Response(status_code=204)
