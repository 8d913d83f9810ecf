"""Turn leases: at most one running turn per conversation, held in the database so the rule
holds across processes; a lease that is not renewed expires (its process died)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.store.tables import Conversation, TurnLease, utcnow


class LeaseRepository:
    def __init__(self, db: AsyncSession) -> None:
        self._db = db

    def _insert(self) -> Any:
        dialect = self._db.get_bind().dialect.name
        return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(TurnLease)

    async def acquire(
        self, conversation_id: str, holder: str, ttl: timedelta, *, owner: str
    ) -> bool:
        """Take the lease of `owner`'s conversation, or take over an expired one: one
        statement. False while another turn holds it, or when `owner` has no such
        conversation (the caller tells which, off the hot path)."""
        now = utcnow()
        expires_at = sa.literal(now + ttl, sa.DateTime(timezone=True))
        owned = sa.select(sa.literal(conversation_id), sa.literal(holder), expires_at).where(
            col(Conversation.id) == conversation_id, col(Conversation.user_id) == owner
        )
        statement = (
            self._insert()
            .from_select(["conversation_id", "holder", "expires_at"], owned)
            .on_conflict_do_update(
                index_elements=["conversation_id"],
                set_={"holder": holder, "expires_at": now + ttl},
                where=col(TurnLease.expires_at) < now,
            )
        )
        result = await self._db.exec(statement)
        return bool(result.rowcount)

    async def renew(self, conversation_id: str, holder: str, ttl: timedelta) -> bool:
        statement = (
            sa.update(TurnLease)
            .where(
                col(TurnLease.conversation_id) == conversation_id,
                col(TurnLease.holder) == holder,
            )
            .values(expires_at=utcnow() + ttl)
        )
        return bool((await self._db.exec(statement)).rowcount)

    async def release(self, conversation_id: str, holder: str) -> None:
        statement = sa.delete(TurnLease).where(
            col(TurnLease.conversation_id) == conversation_id, col(TurnLease.holder) == holder
        )
        await self._db.exec(statement)

    async def held(self, conversation_id: str) -> bool:
        """Whether an unexpired lease is held on the conversation (a turn runs in it)."""
        statement = select(TurnLease.conversation_id).where(
            col(TurnLease.conversation_id) == conversation_id,
            col(TurnLease.expires_at) > utcnow(),
        )
        return (await self._db.exec(statement)).first() is not None

    async def drop(self, conversation_id: str) -> None:
        """Forget the conversation's lease, whoever held it (the conversation is deleted)."""
        statement = sa.delete(TurnLease).where(col(TurnLease.conversation_id) == conversation_id)
        await self._db.exec(statement)
