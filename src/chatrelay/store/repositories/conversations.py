"""Conversations, always looked up through their owner."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.store.repositories._keyset import keyset_after
from chatrelay.store.tables import Conversation, TurnLease, conversations_table


class ConversationRepository:
    """Every read is scoped to `user_id`: another user's conversation does not exist here."""

    def __init__(self, db: AsyncSession, user_id: str) -> None:
        self._db = db
        self._user_id = user_id

    async def get(self, conversation_id: str) -> Conversation | None:
        statement = select(Conversation).where(
            col(Conversation.id) == conversation_id,
            col(Conversation.user_id) == self._user_id,
        )
        return (await self._db.exec(statement)).first()

    async def add(
        self,
        conversation_id: str,
        *,
        created_at: datetime,
        updated_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
        title: str | None = None,
    ) -> None:
        """Insert a new conversation of this user (one statement, no ORM object)."""
        row = {
            "id": conversation_id,
            "user_id": self._user_id,
            "title": title,
            "created_at": created_at,
            "updated_at": updated_at or created_at,
            "metadata": metadata or {},
        }
        await self._db.exec(sa.insert(conversations_table).values(row))

    async def touch(self, conversation_id: str, at: datetime) -> bool:
        """Bump `updated_at`; False when the conversation is gone (deleted mid-turn)."""
        statement = (
            sa.update(Conversation)
            .where(
                col(Conversation.id) == conversation_id,
                col(Conversation.user_id) == self._user_id,
            )
            .values(updated_at=at)
        )
        result = await self._db.exec(statement)
        return bool(result.rowcount)

    async def page(
        self, limit: int, order: Literal["asc", "desc"], after: str | None
    ) -> tuple[list[Conversation], bool]:
        """One page of the user's conversations by creation time, and whether more follow.

        `after` is the id of the last conversation of the previous page; an id that is not
        this user's raises `LookupError`, exactly like one that does not exist.
        """
        statement = select(Conversation).where(col(Conversation.user_id) == self._user_id)
        key = (col(Conversation.created_at), col(Conversation.id))
        if after is not None:
            cursor = await self.get(after)
            if cursor is None:
                raise LookupError(after)
            statement = statement.where(keyset_after(key, (cursor.created_at, cursor.id), order))
        ordered = [k.desc() if order == "desc" else k.asc() for k in key]
        rows = list((await self._db.exec(statement.order_by(*ordered).limit(limit + 1))).all())
        return rows[:limit], len(rows) > limit

    async def rename(self, conversation: Conversation, title: str | None) -> Conversation:
        conversation.title = title
        self._db.add(conversation)
        await self._db.flush()
        return conversation

    async def delete(self, conversation: Conversation) -> None:
        """Delete with its messages and feedback (ON DELETE CASCADE) and its lease."""
        lease = sa.delete(TurnLease).where(col(TurnLease.conversation_id) == conversation.id)
        await self._db.exec(lease)
        await self._db.delete(conversation)
        await self._db.flush()
