"""A user's attachments: every lookup is by user and id, so another user's attachment is
never found (it answers exactly like a missing one)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.store.tables import Attachment, utcnow


class AttachmentRepository:
    def __init__(self, db: AsyncSession, user_id: str) -> None:
        self._db = db
        self._user_id = user_id

    async def add(self, attachment: Attachment) -> Attachment:
        assert attachment.user_id == self._user_id, "a user adds only their own attachments"
        self._db.add(attachment)
        await self._db.flush()
        return attachment

    async def get(self, attachment_id: str) -> Attachment | None:
        statement = select(Attachment).where(
            col(Attachment.id) == attachment_id, col(Attachment.user_id) == self._user_id
        )
        return (await self._db.exec(statement)).first()

    async def get_many(self, attachment_ids: Sequence[str]) -> dict[str, Attachment]:
        statement = select(Attachment).where(
            col(Attachment.id).in_(list(attachment_ids)), col(Attachment.user_id) == self._user_id
        )
        return {row.id: row for row in (await self._db.exec(statement)).all()}

    async def delete(self, attachment_id: str) -> bool:
        statement = sa.delete(Attachment).where(
            col(Attachment.id) == attachment_id, col(Attachment.user_id) == self._user_id
        )
        return bool((await self._db.exec(statement)).rowcount)

    async def attach_to(self, message_id: str, attachment_ids: Sequence[str]) -> None:
        """Record that `message_id` carried these attachments (they are no orphans now)."""
        if not attachment_ids:
            return
        statement = (
            sa.update(Attachment)
            .where(
                col(Attachment.id).in_(list(attachment_ids)),
                col(Attachment.user_id) == self._user_id,
            )
            .values(message_id=message_id)
        )
        await self._db.exec(statement)


class UploadClaims:
    """What an upload link does to its attachment, found by id alone: the link's signature
    (checked before) names the attachment, and no user comes with an upload."""

    def __init__(self, db: AsyncSession) -> None:
        self._db = db

    async def get(self, attachment_id: str) -> Attachment | None:
        return await self._db.get(Attachment, attachment_id)

    async def claim(self, attachment_id: str) -> Attachment | None:
        """Take the attachment's one upload: `pending` becomes `uploading` in one statement,
        so of two uploads with the same link exactly one gets the row. None: no such
        attachment, or its link was used already."""
        statement = (
            sa.update(Attachment)
            .where(col(Attachment.id) == attachment_id, col(Attachment.state) == "pending")
            .values(state="uploading")
        )
        if not (await self._db.exec(statement)).rowcount:
            return None
        return await self.get(attachment_id)

    async def stored(self, attachment_id: str, size: int) -> None:
        statement = (
            sa.update(Attachment)
            .where(col(Attachment.id) == attachment_id)
            .values(state="ready", size=size, uploaded_at=utcnow())
        )
        await self._db.exec(statement)

    async def drop(self, attachment_id: str) -> None:
        await self._db.exec(sa.delete(Attachment).where(col(Attachment.id) == attachment_id))

    async def orphans(self, created_before: datetime, limit: int) -> list[Attachment]:
        """Attachments no message carries, created before `created_before`, oldest first."""
        statement = (
            select(Attachment)
            .where(
                col(Attachment.message_id).is_(None), col(Attachment.created_at) < created_before
            )
            .order_by(col(Attachment.created_at))
            .limit(limit)
        )
        return list((await self._db.exec(statement)).all())
