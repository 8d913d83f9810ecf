"""Messages of one conversation (ownership is checked by the caller's ConversationRepository)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.store.repositories._keyset import keyset_after
from chatrelay.store.tables import Conversation, Message, messages_table


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

    async def page(
        self,
        conversation_id: str,
        limit: int,
        order: Literal["asc", "desc"],
        *,
        after: str | None = None,
        before: str | None = None,
    ) -> tuple[list[Message], bool]:
        """Up to `limit` messages in `order`, strictly after the message `after` or before
        the message `before` (at most one of them), and whether more lie beyond in the
        direction paged. `LookupError` when the cursor is not a message of the conversation."""
        walk = order if before is None else ("desc" if order == "asc" else "asc")
        statement = select(Message).where(col(Message.conversation_id) == conversation_id)
        key = (col(Message.created_at), col(Message.id))
        cursor_id = after if before is None else before
        if cursor_id is not None:
            cursor = await self.get(conversation_id, cursor_id)
            if cursor is None:
                raise LookupError(cursor_id)
            statement = statement.where(keyset_after(key, (cursor.created_at, cursor.id), walk))
        ordered = [k.desc() if walk == "desc" else k.asc() for k in key]
        rows = list((await self._db.exec(statement.order_by(*ordered).limit(limit + 1))).all())
        page = rows[:limit]
        if before is not None:
            page.reverse()
        return page, len(rows) > limit

    async def delete_after(self, conversation_id: str, message: Message) -> int:
        """Delete every message after `message` (a retry replaces them)."""
        key = (col(Message.created_at), col(Message.id))
        statement = sa.delete(Message).where(
            col(Message.conversation_id) == conversation_id,
            keyset_after(key, (message.created_at, message.id), "asc"),
        )
        result = await self._db.exec(statement)
        return int(result.rowcount or 0)

    async def request_and_reply(
        self, user_id: str, conversation_id: str | None, request_id: str
    ) -> tuple[Message, Message | None] | None:
        """The user's newest message sent with `request_id`, and the message right after it
        (its reply, when that is an assistant message), in one query.

        Without `conversation_id` only a message that opened its conversation counts: the
        request started a conversation (request ids are scoped per conversation).
        """
        request, after, before = aliased(Message), aliased(Message), aliased(Message)
        request_key = (col(request.created_at), col(request.id))
        next_id = (
            select(col(after.id))
            .where(
                col(after.conversation_id) == col(request.conversation_id),
                keyset_after((col(after.created_at), col(after.id)), request_key, "asc"),
            )
            .order_by(col(after.created_at), col(after.id))
            .limit(1)
            .scalar_subquery()
        )
        reply = aliased(Message)
        statement = (
            select(request, reply)
            .join(Conversation, col(Conversation.id) == col(request.conversation_id))
            .outerjoin(reply, col(reply.id) == next_id)
            .where(
                col(Conversation.user_id) == user_id,
                col(request.role) == "user",
                col(request.request_id) == request_id,
            )
            .order_by(col(request.created_at).desc())
            .limit(1)
        )
        if conversation_id is not None:
            statement = statement.where(col(request.conversation_id) == conversation_id)
        else:
            earlier = select(col(before.id)).where(
                col(before.conversation_id) == col(request.conversation_id),
                keyset_after((col(before.created_at), col(before.id)), request_key, "desc"),
            )
            statement = statement.where(~earlier.exists())
        row = (await self._db.exec(statement)).first()
        return None if row is None else (row[0], row[1])
