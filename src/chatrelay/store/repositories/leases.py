"""Turn leases: at most one running turn per conversation, held in the database so the rule
holds across processes; a lease that is not renewed expires (its process died)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.store.tables import TurnLease, utcnow


class LeaseRepository:
    def __init__(self, db: AsyncSession) -> None:
        self._db = db

    def _insert(self) -> Any:
        dialect = self._db.get_bind().dialect.name
        return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(TurnLease)

    async def acquire(self, conversation_id: str, holder: str, ttl: timedelta) -> bool:
        """Take the lease, or take over an expired one; False while another turn holds it."""
        now = utcnow()
        statement = (
            self._insert()
            .values(conversation_id=conversation_id, holder=holder, expires_at=now + ttl)
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
