"""One turn per conversation: a lease row taken before the turn starts, renewed while it
runs, released by its finalizer. A process that dies stops renewing, so its lease expires."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.server.errors import ChatrelayError, NotFound, retry_after
from chatrelay.store import transaction
from chatrelay.store.repositories import ConversationRepository, LeaseRepository

logger = logging.getLogger("chatrelay.turns")


class ConversationBusy(ChatrelayError):
    status_code = 409

    def __init__(self, retry_after_seconds: float) -> None:
        super().__init__("conversation busy", headers=retry_after(retry_after_seconds))


class TurnLease:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        conversation_id: str,
        holder: str,
        ttl_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._conversation_id = conversation_id
        self._holder = holder
        self._ttl = timedelta(seconds=ttl_seconds)

    async def acquire(self, db: AsyncSession, owner: str, what: str = "conversation") -> None:
        """Take the lease of `owner`'s conversation in the caller's transaction; `NotFound`
        (404) when it is not theirs (exactly as when it does not exist), `ConversationBusy`
        (409) while another turn holds it."""
        leases = LeaseRepository(db)
        if await leases.acquire(self._conversation_id, self._holder, self._ttl, owner=owner):
            return
        if await ConversationRepository(db, owner).get(self._conversation_id) is None:
            raise NotFound(f"{what} not found")
        raise ConversationBusy(retry_after_seconds=1)

    async def keep(self) -> None:
        """Renew until cancelled (run as a task beside the turn)."""
        interval = self._ttl.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with transaction(self._sessions) as db:
                    await LeaseRepository(db).renew(self._conversation_id, self._holder, self._ttl)
            except Exception as exc:  # the next renewal may work; expiry is the safety net
                logger.warning("could not renew the lease of %s: %s", self._conversation_id, exc)

    async def release_with(self, db: AsyncSession) -> None:
        """Release in the caller's transaction: gone when it commits, kept when it rolls back."""
        await LeaseRepository(db).release(self._conversation_id, self._holder)

    async def release(self) -> None:
        try:
            async with transaction(self._sessions) as db:
                await LeaseRepository(db).release(self._conversation_id, self._holder)
        except Exception as exc:  # it expires on its own
            logger.warning("could not release the lease of %s: %s", self._conversation_id, exc)
