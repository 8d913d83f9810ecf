"""`TurnStore` on `chatrelay.store` (SQLite or Postgres): short transactions, one per step."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.store import Message, transaction
from chatrelay.store.repositories import (
    AttachmentRepository,
    ConversationRepository,
    LeaseRepository,
    MessageRepository,
)
from chatrelay.store.tables import as_utc
from chatrelay.turns.errors import Busy, NotFound, StoreUnavailable
from chatrelay.turns.spec import History, TurnOutcome, TurnSpec
from chatrelay.turns.store import LeaseTerms, RequestKey, StoredMessage, StoredReply

logger = logging.getLogger("chatrelay.turns")


def _transient(error: Exception) -> bool:
    """A lost or refused connection, or no pooled connection free in time (worth
    retrying), not a constraint or a bug."""
    if isinstance(error, PoolTimeout):
        return True
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)
    return isinstance(error, OSError | ConnectionError)


def _user_row(spec: TurnSpec) -> dict[str, Any]:
    return {
        "id": spec.user_message_id,
        "conversation_id": spec.conversation_id,
        "role": "user",
        "content": spec.user_text,
        "status": "completed",
        "tool_calls": [],
        "usage": None,
        "request_id": spec.request_id,
        "metadata": spec.metadata,
        "parts": spec.user_parts,
        "created_at": spec.started_at,
    }


def _assistant_row(spec: TurnSpec, outcome: TurnOutcome) -> dict[str, Any]:
    return {
        "id": outcome.message_id,
        "conversation_id": spec.conversation_id,
        "role": "assistant",
        # Postgres text cannot hold NUL; a model may still emit one.
        "content": outcome.text.replace("\x00", ""),
        "status": outcome.status,
        "tool_calls": outcome.tool_calls,
        "usage": {
            "input_tokens": outcome.usage.input_tokens,
            "output_tokens": outcome.usage.output_tokens,
            "total_tokens": outcome.usage.total_tokens,
        },
        "request_id": spec.request_id,
        "metadata": None,
        "parts": None,
        "created_at": outcome.created_at,
    }


def _stored(message: Message) -> StoredMessage:
    return StoredMessage(
        id=message.id,
        conversation_id=message.conversation_id,
        role=message.role,
        content=message.content,
        status=message.status,
        tool_calls=message.tool_calls,
        usage=message.usage,
        request_id=message.request_id,
        metadata=message.meta,
        parts=message.parts,
        created_at=as_utc(message.created_at),
    )


class _NotWritten(Exception):
    """Roll the transaction back: the turn can no longer be written (and why)."""


class SqlTurnStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def open_turn(
        self,
        spec: TurnSpec,
        lease: LeaseTerms,
        *,
        history_limit: int,
        admit: Callable[[], Awaitable[None]],
        what: str,
    ) -> History:
        # One transaction: the lease of the user's conversation (404 when it is not theirs),
        # then the history read under it (the previous turn is committed by now).
        async with transaction(self._sessions) as db:
            ttl = timedelta(seconds=lease.ttl_seconds)
            leases = LeaseRepository(db)
            if not await leases.acquire(
                lease.conversation_id, lease.holder, ttl, owner=spec.user_id
            ):
                conversation = await ConversationRepository(db, spec.user_id).get(
                    spec.conversation_id
                )
                if conversation is None:
                    raise NotFound(f"{what} not found")
                raise Busy()
            await admit()
            return await _history(db, spec, history_limit)

    async def commit_turn(
        self, spec: TurnSpec, outcome: TurnOutcome, lease: LeaseTerms | None
    ) -> bool:
        try:
            async with transaction(self._sessions) as db:
                await _write(db, spec, outcome, lease)
        except _NotWritten as problem:
            logger.warning(
                "%s; reply dropped (conversation %s, correlation_id=%s)",
                problem,
                spec.conversation_id,
                spec.correlation_id,
            )
            return False
        except Exception as error:
            if _transient(error):
                raise StoreUnavailable(str(error), busy=isinstance(error, PoolTimeout)) from error
            raise
        return True

    async def renew_lease(self, lease: LeaseTerms) -> bool:
        ttl = timedelta(seconds=lease.ttl_seconds)
        async with transaction(self._sessions) as db:
            return await LeaseRepository(db).renew(lease.conversation_id, lease.holder, ttl)

    async def release_lease(self, lease: LeaseTerms) -> None:
        async with transaction(self._sessions) as db:
            await LeaseRepository(db).release(lease.conversation_id, lease.holder)

    async def owns(self, user_id: str, conversation_id: str) -> bool:
        async with transaction(self._sessions) as db:
            return await ConversationRepository(db, user_id).get(conversation_id) is not None

    async def stored_reply(self, key: RequestKey) -> StoredReply | None:
        user_id, conversation_id, request_id = key
        async with transaction(self._sessions) as db:
            found = await MessageRepository(db).request_and_reply(
                user_id, conversation_id, request_id
            )
        if found is None:
            return None
        request, reply = found
        if reply is None or reply.role != "assistant":
            return None
        return StoredReply(_stored(request), _stored(reply))


async def _history(db: AsyncSession, spec: TurnSpec, limit: int) -> History:
    """The newest `limit` messages before this turn's user message, oldest first."""
    messages = MessageRepository(db)
    if not spec.retry:
        return await messages.recent_history(spec.conversation_id, limit)
    retried = await messages.get(spec.conversation_id, spec.user_message_id)
    if retried is None:
        raise NotFound("item not found")
    newest_first = await messages.from_message(spec.conversation_id, retried, "desc", limit + 1)
    return [(m.role, m.content) for m in reversed(newest_first[1:])]


async def _write(
    db: AsyncSession, spec: TurnSpec, outcome: TurnOutcome, lease: LeaseTerms | None
) -> None:
    conversations = ConversationRepository(db, spec.user_id)
    messages = MessageRepository(db)
    if spec.new_conversation:
        # Created with its first turn: a failed first turn leaves nothing behind.
        await conversations.add(
            spec.conversation_id,
            created_at=spec.new_conversation_created_at,
            updated_at=outcome.created_at,
            metadata=spec.metadata,
            title=spec.title,
        )
    elif not await conversations.touch(spec.conversation_id, outcome.created_at):
        raise _NotWritten("the conversation was deleted mid-turn")
    if spec.retry:
        retried = await messages.get(spec.conversation_id, spec.user_message_id)
        if retried is None:
            raise _NotWritten("the retried message was deleted mid-turn")
        await messages.delete_after(spec.conversation_id, retried)
        await messages.insert([_assistant_row(spec, outcome)])
    else:
        await messages.insert([_user_row(spec), _assistant_row(spec, outcome)])
        # In the pair's transaction: an attachment is sent exactly when its message is stored.
        await AttachmentRepository(db, spec.user_id).attach_to(
            spec.user_message_id, [attachment.id for attachment in spec.attachments]
        )
    if lease is not None:  # gone when this commits, kept when it rolls back
        await LeaseRepository(db).release(lease.conversation_id, lease.holder)
