"""Feedback on items (the caller has checked that the conversation is the user's)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.store.tables import Feedback, utcnow


class FeedbackRepository:
    def __init__(self, db: AsyncSession) -> None:
        self._db = db

    async def record(self, conversation_id: str, item_ids: Sequence[str], kind: str) -> None:
        """Set the feedback of each item; a second vote replaces the first."""
        statement = select(Feedback).where(
            col(Feedback.conversation_id) == conversation_id,
            col(Feedback.item_id).in_(list(item_ids)),
        )
        existing = {row.item_id: row for row in (await self._db.exec(statement)).all()}
        now = utcnow()
        for item_id in dict.fromkeys(item_ids):
            row = existing.get(item_id)
            if row is None:
                row = Feedback(conversation_id=conversation_id, item_id=item_id, kind=kind)
            row.kind, row.created_at = kind, now
            self._db.add(row)
        await self._db.flush()
