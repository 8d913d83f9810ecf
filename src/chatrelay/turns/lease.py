"""One turn per conversation: a lease taken before the turn starts (`TurnStore.open_turn`),
renewed while it runs (`keep`), released by the commit that ends it or by `release`.
A process that dies stops renewing, so its lease expires."""

from __future__ import annotations

import asyncio
import logging

from chatrelay.turns.store import LeaseTerms, TurnStore

logger = logging.getLogger("chatrelay.turns")


class Lease:
    def __init__(self, store: TurnStore, terms: LeaseTerms) -> None:
        self.terms = terms
        self._store = store

    async def keep(self) -> None:
        """Renew until cancelled (run as a task beside the turn)."""
        interval = self.terms.ttl_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self._store.renew_lease(self.terms)
            except Exception as exc:  # the next renewal may work; expiry is the safety net
                logger.warning(
                    "could not renew the lease of %s: %s", self.terms.conversation_id, exc
                )

    async def release(self) -> None:
        try:
            await self._store.release_lease(self.terms)
        except Exception as exc:  # it expires on its own
            logger.warning("could not release the lease of %s: %s", self.terms.conversation_id, exc)
