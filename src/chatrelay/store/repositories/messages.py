"""Messages of one conversation (ownership is checked by the caller's ConversationRepository)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.store.tables import Message


class MessageRepository:
    def __init__(self, db: AsyncSession) -> None:
        self._db = db

    async def recent(self, conversation_id: str, limit: int) -> list[Message]:
        """The newest `limit` messages, oldest first.

        One query on the (conversation_id, created_at) index: its cost depends on `limit`,
        not on the conversation's length. `id` breaks ties between equal timestamps.
        """
        statement = (
            select(Message)
            .where(col(Message.conversation_id) == conversation_id)
            .order_by(col(Message.created_at).desc(), col(Message.id).desc())
            .limit(limit)
        )
        newest_first = (await self._db.exec(statement)).all()
        return list(reversed(newest_first))

    def add_all(self, messages: Sequence[Message]) -> None:
        self._db.add_all(messages)
