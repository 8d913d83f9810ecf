"""The finalizer's one transaction: a turn's messages, written together or not at all."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.server.turn_model import TurnOutcome, TurnSpec
from chatrelay.store import Message, transaction
from chatrelay.store.repositories import ConversationRepository, MessageRepository

logger = logging.getLogger("chatrelay.turns")


def user_message(spec: TurnSpec) -> Message:
    return Message(
        id=spec.user_message_id,
        conversation_id=spec.conversation_id,
        role="user",
        content=spec.user_text,
        status="completed",
        request_id=spec.request_id,
        meta=spec.metadata,
        parts=spec.user_parts,
        created_at=spec.started_at,
    )


def assistant_message(spec: TurnSpec, outcome: TurnOutcome) -> Message:
    return Message(
        id=outcome.message_id,
        conversation_id=spec.conversation_id,
        role="assistant",
        # Postgres text cannot hold NUL; a model may still emit one.
        content=outcome.text.replace("\x00", ""),
        status=outcome.status,
        tool_calls=outcome.tool_calls,
        usage={
            "input_tokens": outcome.usage.input_tokens,
            "output_tokens": outcome.usage.output_tokens,
            "total_tokens": outcome.usage.total_tokens,
        },
        request_id=spec.request_id,
        created_at=outcome.created_at,
    )


class _NotWritten(Exception):
    """Roll the transaction back: the turn can no longer be written (and why)."""


async def _write(db: AsyncSession, spec: TurnSpec, outcome: TurnOutcome) -> None:
    conversations = ConversationRepository(db, spec.user_id)
    messages = MessageRepository(db)
    if spec.new_conversation:
        # Created with its first turn: a failed first turn leaves nothing behind.
        await conversations.add(
            spec.conversation_id,
            created_at=spec.conversation_created_at,
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
        messages.add_all([assistant_message(spec, outcome)])
    else:
        messages.add_all([user_message(spec), assistant_message(spec, outcome)])


async def commit_turn(
    sessions: async_sessionmaker[AsyncSession], spec: TurnSpec, outcome: TurnOutcome
) -> bool:
    """Commit the turn in one transaction; False (and logged) when it could not be."""
    try:
        async with transaction(sessions) as db:
            await _write(db, spec, outcome)
    except _NotWritten as problem:
        logger.warning(
            "%s; reply dropped (conversation %s, correlation_id=%s)",
            problem,
            spec.conversation_id,
            spec.correlation_id,
        )
        return False
    except Exception:
        logger.exception(
            "could not commit turn of conversation %s (correlation_id=%s)",
            spec.conversation_id,
            spec.correlation_id,
        )
        return False
    return True
