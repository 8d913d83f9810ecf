"""Exactly-once turns: a request id names one turn of a conversation.

A repeat while the turn runs attaches to it (its stream, or its outcome); a repeat after it
was committed gets the stored reply, the model is not run again. The `(conversation_id,
request_id)` unique index makes a second pair impossible even across processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from chatkit.types import ThreadItemDoneEvent
from sqlmodel import col, select
from sse_starlette import EventSourceResponse

from chatrelay.schemas import ChatResponse, TokenUsage, ToolCallRecord
from chatrelay.server.chatkit_items import items_of
from chatrelay.server.context import AppContext
from chatrelay.server.request_claims import RequestKey
from chatrelay.server.sse import encode_event, frame, sse_response
from chatrelay.store import Conversation, Message, transaction
from chatrelay.store.repositories import MessageRepository
from chatrelay.store.tables import as_utc


@dataclass(frozen=True)
class StoredReply:
    request: Message
    reply: Message


async def find_stored(context: AppContext, key: RequestKey) -> StoredReply | None:
    """The committed turn this request id names, if any.

    Without a conversation id the request started a conversation, so only a request that
    is the first message of its conversation counts (ids are scoped per conversation).
    """
    user_id, conversation_id, request_id = key
    async with transaction(context.sessions) as db:
        statement = (
            select(Message)
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .where(
                col(Conversation.user_id) == user_id,
                col(Message.role) == "user",
                col(Message.request_id) == request_id,
            )
            .order_by(col(Message.created_at).desc())
        )
        if conversation_id is not None:
            statement = statement.where(col(Message.conversation_id) == conversation_id)
        messages = MessageRepository(db)
        for request in (await db.exec(statement.limit(20))).all():
            if conversation_id is None:
                earlier = await messages.from_message(request.conversation_id, request, "desc", 2)
                if len(earlier) > 1:
                    continue  # it continued some conversation: not this new-conversation request
            pair = await messages.from_message(request.conversation_id, request, "asc", 2)
            if len(pair) == 2 and pair[1].role == "assistant":
                return StoredReply(request, pair[1])
            return None
    return None


def stored_json(stored: StoredReply) -> ChatResponse:
    reply = stored.reply
    usage = reply.usage or {}
    return ChatResponse(
        conversation_id=reply.conversation_id,
        message_id=reply.id,
        message=reply.content,
        response=reply.content,
        created_at=as_utc(reply.created_at),
        tool_calls=[ToolCallRecord.model_validate(call) for call in reply.tool_calls],
        usage=TokenUsage.model_validate(usage),
        request_id=stored.request.request_id,
        metadata=stored.request.meta,
    )


async def _stored_frames(stored: StoredReply) -> AsyncIterator[bytes]:
    items = [*items_of(stored.request), *items_of(stored.reply)]
    for sequence, item in enumerate(items):
        yield frame(sequence, encode_event(ThreadItemDoneEvent(item=item)))


def stored_stream(context: AppContext, stored: StoredReply) -> EventSourceResponse:
    """The committed turn, as finished items (no model run, no deltas)."""
    return sse_response(_stored_frames(stored), context.settings)
