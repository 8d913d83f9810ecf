"""Conversations, always looked up through their owner."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.store.tables import Conversation


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
    ) -> Conversation:
        conversation = Conversation(
            id=conversation_id,
            user_id=self._user_id,
            created_at=created_at,
            updated_at=updated_at or created_at,
            meta=metadata or {},
        )
        self._db.add(conversation)
        await self._db.flush()
        return conversation

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
