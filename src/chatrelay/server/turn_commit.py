"""The finalizer's one transaction: a turn's messages, written together or not at all."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.server.turn_lease import TurnLease
from chatrelay.server.turn_model import TurnOutcome, TurnSpec
from chatrelay.store import transaction
from chatrelay.store.repositories import ConversationRepository, MessageRepository

logger = logging.getLogger("chatrelay.turns")


@dataclass(frozen=True)
class NewUserMessage:
    """The turn's user message before it is stored (for its ChatKit item)."""

    id: str
    conversation_id: str
    content: str
    parts: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def of(cls, spec: TurnSpec) -> NewUserMessage:
        return cls(
            spec.user_message_id,
            spec.conversation_id,
            spec.user_text,
            spec.user_parts,
            spec.started_at,
        )


def user_row(spec: TurnSpec) -> dict[str, Any]:
    """The turn's user message, as the `messages` row it is stored as."""
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


def assistant_row(spec: TurnSpec, outcome: TurnOutcome) -> dict[str, Any]:
    """The turn's reply, as the `messages` row it is stored as."""
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


class _NotWritten(Exception):
    """Roll the transaction back: the turn can no longer be written (and why)."""


async def _write(
    db: AsyncSession, spec: TurnSpec, outcome: TurnOutcome, lease: TurnLease | None
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
        await messages.insert([assistant_row(spec, outcome)])
    else:
        await messages.insert([user_row(spec), assistant_row(spec, outcome)])
    if lease is not None:
        await lease.release_with(db)  # no transaction of its own when the turn commits


COMMIT_BACKOFF_SECONDS = (0.1, 0.5, 2.0)
"""Waits before the 2nd, 3rd and 4th attempt when the database connection fails."""


def _transient(error: Exception) -> bool:
    """A lost or refused connection (worth retrying), not a constraint or a bug."""
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)
    return isinstance(error, OSError | ConnectionError)


async def commit_turn(
    sessions: async_sessionmaker[AsyncSession],
    spec: TurnSpec,
    outcome: TurnOutcome,
    lease: TurnLease | None = None,
) -> bool:
    """Commit the turn in one transaction (releasing `lease` in it), retrying lost
    connections with backoff; False (and logged with the correlation id) when it could not be
    committed, and then the lease is still held."""
    for attempt, delay in enumerate((0.0, *COMMIT_BACKOFF_SECONDS)):
        await asyncio.sleep(delay)
        try:
            return await _commit_once(sessions, spec, outcome, lease)
        except Exception as error:
            if not _transient(error) or attempt == len(COMMIT_BACKOFF_SECONDS):
                logger.exception(
                    "could not commit turn of conversation %s (correlation_id=%s)",
                    spec.conversation_id,
                    spec.correlation_id,
                )
                return False
            logger.warning(
                "commit attempt %d of conversation %s failed, retrying: %s (correlation_id=%s)",
                attempt + 1,
                spec.conversation_id,
                error,
                spec.correlation_id,
            )
    return False


async def _commit_once(
    sessions: async_sessionmaker[AsyncSession],
    spec: TurnSpec,
    outcome: TurnOutcome,
    lease: TurnLease | None,
) -> bool:
    try:
        async with transaction(sessions) as db:
            await _write(db, spec, outcome, lease)
    except _NotWritten as problem:
        logger.warning(
            "%s; reply dropped (conversation %s, correlation_id=%s)",
            problem,
            spec.conversation_id,
            spec.correlation_id,
        )
        return False
    return True
