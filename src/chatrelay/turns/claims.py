"""Exactly-once turns: a request id names one turn of a conversation.

A repeat while the turn runs attaches to it (its stream, or its outcome); a repeat after it
was committed gets the stored reply, the model is not run again. In-process claims make
concurrent repeats wait for the first; the store's unique `(conversation_id, request_id)`
index makes a second pair impossible even across processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chatrelay.turns.metrics import Metrics
from chatrelay.turns.store import RequestKey, StoredReply, TurnStore
from chatrelay.turns.turn import Turn


@dataclass(frozen=True)
class Attached:
    """The request id's turn is running (started by an earlier request): follow it."""

    turn: Turn


@dataclass(frozen=True)
class Stored:
    """The request id's turn was committed: answer with what was stored."""

    reply: StoredReply


@dataclass(frozen=True)
class Started:
    """Nothing had this request id: `start()` started its turn."""

    turn: Turn


class RequestClaims:
    """Which request ids this process is serving, so a repeat attaches, never runs twice.

    The first request claims its key; a repeat gets the claim's future, which resolves to
    the running turn (or None when the first request ended without starting one).
    """

    def __init__(self) -> None:
        self._claims: dict[RequestKey, asyncio.Future[Turn | None]] = {}

    def claim(self, key: RequestKey) -> asyncio.Future[Turn | None] | None:
        """None when the caller now owns the key; else the owner's future to wait on."""
        existing = self._claims.get(key)
        if existing is not None:
            return existing
        self._claims[key] = asyncio.get_running_loop().create_future()
        return None

    def started(self, key: RequestKey, turn: Turn) -> None:
        """The owner's turn runs: repeats attach to it until its outcome is settled."""
        self._claims[key].set_result(turn)
        turn.outcome.add_done_callback(lambda _: self._claims.pop(key, None))

    def abandoned(self, key: RequestKey) -> None:
        """The owner answered without a turn (stored reply, or an error)."""
        future = self._claims.pop(key, None)
        if future is not None and not future.done():
            future.set_result(None)


class ExactlyOnce:
    def __init__(self, store: TurnStore, metrics: Metrics | None = None) -> None:
        self._store = store
        self._claims = RequestClaims()
        self._metrics = metrics

    def _answered_repeat(self, answer: str) -> None:
        if self._metrics is not None:
            self._metrics.repeated_requests.labels(answer).inc()

    async def serve(
        self, key: RequestKey, start: Callable[[], Awaitable[Turn]]
    ) -> Attached | Stored | Started:
        """Serve the request id `key` once: attach, answer from the store, or `start()`."""
        while (pending := self._claims.claim(key)) is not None:
            # shield(): a client that hangs up cancels this wait, never the first request.
            running = await asyncio.shield(pending)
            if running is not None:
                self._answered_repeat("attached")
                return Attached(running)
            # The first request ended without a turn: look again (stored by now, or ours).
        turn: Turn | None = None
        try:
            stored = await self._store.stored_reply(key)
            if stored is not None:
                self._answered_repeat("stored")
                return Stored(stored)
            turn = await start()
        finally:
            if turn is None:
                self._claims.abandoned(key)
        self._claims.started(key, turn)
        return Started(turn)
