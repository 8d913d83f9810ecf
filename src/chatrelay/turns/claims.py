"""Exactly-once turns: a request id names one turn of a conversation.

A repeat while the turn runs attaches to it (its stream, or its outcome); a repeat after it
was committed gets the stored reply, the model is not run again. In-process claims make
concurrent repeats wait for the first; shared claims (`SharedClaims`, Redis with several
instances) send a repeat that lands on another instance to the turn running there; and the
store's unique `(conversation_id, request_id)` index makes a second pair of an existing
conversation impossible whatever happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from chatrelay.turns.errors import LiveEventsUnavailable
from chatrelay.turns.log import Batch, WireFormat
from chatrelay.turns.metrics import Metrics
from chatrelay.turns.spec import TurnSpec
from chatrelay.turns.store import RequestKey, StoredReply, TurnStore
from chatrelay.turns.turn import Turn

T = TypeVar("T")


@dataclass(frozen=True)
class Attached:
    """The request id's turn is running (started by an earlier request): follow it."""

    turn: Turn


@dataclass(frozen=True)
class Stored:
    """The request id's turn was committed: answer with what was stored."""

    reply: StoredReply


@dataclass(frozen=True)
class Elsewhere:
    """The request id's turn runs on another instance (or ran there): follow it there."""

    conversation_id: str
    turn_id: str
    instance_id: str


@dataclass(frozen=True)
class Started:
    """Nothing had this request id: `start()` started its turn."""

    turn: Turn


def request_key(spec: TurnSpec) -> RequestKey:
    """The user, the conversation as the request named it (None for a new one: its id is made
    per try) and the request id."""
    assert spec.request_id is not None, "only a request with an id is served exactly once"
    named = None if spec.new_conversation else spec.conversation_id
    return (spec.user_id, named, spec.request_id)


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


TurnNames = tuple[str, str]
"""A turn's conversation id and its reply's id (the turn's id)."""


class SharedClaims(Protocol):
    """Request ids claimed across instances (`chatrelay.cluster` implements it with Redis)."""

    async def claim(self, key: RequestKey, turn: TurnNames) -> Elsewhere | None:
        """Claim `key` for this instance's turn `turn` (before it starts): None when it is
        ours now (a claim whose instance is gone is taken over; a shared state that is away
        lets us run: the store still keeps the pair unique), else where it is served."""
        ...

    async def release(self, key: RequestKey, turn: TurnNames) -> None:
        """Our turn for `key` is settled (or never started): the claim is no longer needed."""
        ...

    async def follow(
        self, elsewhere: Elsewhere, wire_format: WireFormat[T]
    ) -> AsyncIterator[Batch[T]] | None:
        """The turn's items from the first, live until it ends (or the format's error when
        its instance goes away); None when it cannot be followed (it never started, or its
        events are gone)."""
        ...


class ExactlyOnce:
    def __init__(
        self, store: TurnStore, metrics: Metrics | None = None, shared: SharedClaims | None = None
    ) -> None:
        self._store = store
        self._claims = RequestClaims()
        self._metrics = metrics
        self._shared = shared
        self._releases: set[asyncio.Task[None]] = set()

    def _answered_repeat(self, answer: str) -> None:
        if self._metrics is not None:
            self._metrics.repeated_requests.labels(answer).inc()

    async def serve(
        self, spec: TurnSpec, start: Callable[[], Awaitable[Turn]]
    ) -> Attached | Stored | Started | Elsewhere:
        """Serve the spec's request id once: attach (here or elsewhere), answer from the
        store, or `start()` the spec's turn."""
        key, names = request_key(spec), (spec.conversation_id, spec.assistant_message_id)
        while (pending := self._claims.claim(key)) is not None:
            # shield(): a client that hangs up cancels this wait, never the first request.
            running = await asyncio.shield(pending)
            if running is not None:
                self._answered_repeat("attached")
                return Attached(running)
            # The first request ended without a turn: look again (stored by now, or ours).
        turn: Turn | None = None
        shared = False
        try:
            # Claimed everywhere before the store is asked: a turn committed elsewhere before
            # our claim is then in the store, and one committed after it was never started.
            if self._shared is not None:
                elsewhere = await self._shared.claim(key, names)
                if elsewhere is not None:
                    self._answered_repeat("elsewhere")
                    return elsewhere
                shared = True
            stored = await self._store.stored_reply(key)
            if stored is not None:
                self._answered_repeat("stored")
                return Stored(stored)
            turn = await start()
        finally:
            if turn is None:
                self._claims.abandoned(key)
                if shared:
                    self._release(key, names)
        self._claims.started(key, turn)
        if shared:
            turn.outcome.add_done_callback(lambda _: self._release(key, names))
        return Started(turn)

    async def follow(
        self, spec: TurnSpec, elsewhere: Elsewhere, wire_format: WireFormat[T]
    ) -> AsyncIterator[Batch[T]] | Stored:
        """The items of the spec's request's turn on another instance, or its stored reply
        once its events are gone; `LiveEventsUnavailable` when neither can be had (retry)."""
        assert self._shared is not None, "only shared claims send a request elsewhere"
        items = await self._shared.follow(elsewhere, wire_format)
        if items is not None:
            return items
        stored = await self._store.stored_reply(request_key(spec))
        if stored is not None:
            return Stored(stored)
        raise LiveEventsUnavailable("this request's reply is not available yet, please retry")

    def _release(self, key: RequestKey, names: TurnNames) -> None:
        """Release the shared claim in the background: nothing waits on it (it expires)."""
        assert self._shared is not None
        task = asyncio.create_task(self._shared.release(key, names), name="release-claim")
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
