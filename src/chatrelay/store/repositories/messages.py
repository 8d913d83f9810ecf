"""Messages of one conversation (ownership is checked by the caller's ConversationRepository)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.store.repositories._keyset import keyset_after
from chatrelay.store.tables import Message, messages_table


class MessageRepository:
    def __init__(self, db: AsyncSession) -> None:
        self._db = db

    async def recent_history(self, conversation_id: str, limit: int) -> list[tuple[str, str]]:
        """`(role, content)` of the newest `limit` messages, oldest first: what the model reads.

        One query on the (conversation_id, created_at) index: its cost depends on `limit`,
        not on the conversation's length. `id` breaks ties between equal timestamps. Two
        columns and no ORM objects: every turn of a long conversation runs it.
        """
        statement = (
            select(col(Message.role), col(Message.content))
            .where(col(Message.conversation_id) == conversation_id)
            .order_by(col(Message.created_at).desc(), col(Message.id).desc())
            .limit(limit)
        )
        newest_first = (await self._db.exec(statement)).all()
        return [(role, content) for role, content in reversed(newest_first)]

    async def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """New messages in one INSERT, from column values (no ORM objects: every turn writes
        two, and building them costs more than the statement)."""
        await self._db.exec(sa.insert(messages_table).values(list(rows)))

    async def get(self, conversation_id: str, message_id: str) -> Message | None:
        statement = select(Message).where(
            col(Message.conversation_id) == conversation_id, col(Message.id) == message_id
        )
        return (await self._db.exec(statement)).first()

    async def from_message(
        self,
        conversation_id: str,
        start: Message | None,
        order: Literal["asc", "desc"],
        limit: int,
    ) -> list[Message]:
        """Up to `limit` messages in `order`, from `start` (included) or from the first."""
        key = (col(Message.created_at), col(Message.id))
        statement = select(Message).where(col(Message.conversation_id) == conversation_id)
        if start is not None:
            statement = statement.where(
                keyset_after(key, (start.created_at, start.id), order, inclusive=True)
            )
        ordered = [k.desc() if order == "desc" else k.asc() for k in key]
        return list((await self._db.exec(statement.order_by(*ordered).limit(limit))).all())

    async def delete_after(self, conversation_id: str, message: Message) -> int:
        """Delete every message after `message` (a retry replaces them)."""
        key = (col(Message.created_at), col(Message.id))
        statement = sa.delete(Message).where(
            col(Message.conversation_id) == conversation_id,
            keyset_after(key, (message.created_at, message.id), "asc"),
        )
        result = await self._db.exec(statement)
        return int(result.rowcount or 0)
