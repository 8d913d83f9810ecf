"""The turn core's front door: start a turn, stop one, read one again. Every edge (the chat
API, ChatKit's protocol, a socket) goes through here, and nothing here knows which it is."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

from chatrelay.turns.buffer import TurnBuffer
from chatrelay.turns.claims import ExactlyOnce, SharedClaims
from chatrelay.turns.errors import Busy, Conflict, Invalid, NotFound
from chatrelay.turns.lease import Lease
from chatrelay.turns.limits import UserLimits
from chatrelay.turns.log import Batch, WireFormat
from chatrelay.turns.metrics import Metrics
from chatrelay.turns.model import TurnModel
from chatrelay.turns.registry import TurnRegistry
from chatrelay.turns.remote import RemoteTurns
from chatrelay.turns.spec import History, TurnOutcome, TurnSpec, utcnow
from chatrelay.turns.store import LeaseTerms, TurnStore
from chatrelay.turns.tracing import NO_TRACER, TurnTracer
from chatrelay.turns.turn import Turn

T = TypeVar("T")


@dataclass(frozen=True)
class TurnConfig:
    timeout_seconds: float = 300.0
    lease_seconds: float = 30.0
    history_limit: int = 50
    flush_interval: float = 0.0
    default_model: str = "offline"
    model_allowlist: tuple[str, ...] = ()
    """Models a client may pick per turn, besides the default."""


class TurnService:
    def __init__(
        self,
        *,
        store: TurnStore,
        model: TurnModel,
        registry: TurnRegistry,
        buffer: TurnBuffer,
        limits: UserLimits,
        config: TurnConfig,
        metrics: Metrics | None = None,
        remote: RemoteTurns | None = None,
        claims: SharedClaims | None = None,
        tracer: TurnTracer = NO_TRACER,
    ) -> None:
        self.store = store
        self._remote = remote
        self.registry = registry
        self.limits = limits
        self.exactly_once = ExactlyOnce(store, metrics, claims)
        self._model = model
        self._buffer = buffer
        self._config = config
        self._metrics = metrics
        self._tracer = tracer

    def check_model(self, model: str | None) -> None:
        """`Invalid` unless the client may pick `model` (None: the configured one)."""
        config = self._config
        if model and model != config.default_model and model not in config.model_allowlist:
            raise Invalid(f"model {model!r} is not allowed on this server")

    async def start(self, spec: TurnSpec, *, what: str = "conversation") -> Turn:
        """Check the user's conversation (`NotFound`: "{what} not found"), take its lease
        (`Busy`), count the turn (`RateLimited`), then start it in its own task, owned by the
        registry, not by the caller. `ShuttingDown` once this instance drains."""
        self.registry.admit()
        self.check_model(spec.model)
        config = self._config
        lease: Lease | None = None
        if spec.new_conversation:
            # Nothing to serialise against: the conversation exists once this turn commits, so
            # until then any other turn naming its id is a 404. No lease, no history, no query.
            await self.limits.count_turn(spec.user_id)
        else:
            terms = LeaseTerms(
                spec.conversation_id, spec.assistant_message_id, config.lease_seconds
            )
            spec.history = await self._open_turn(spec, terms, what)
            lease = Lease(self.store, terms)
        if not spec.retry:
            spec.started_at = utcnow()  # after every message already in the conversation
        turn = Turn(
            spec,
            model=self._model,
            store=self.store,
            timeout_seconds=config.timeout_seconds,
            lease=lease,
            metrics=self._metrics,
            flush_interval=config.flush_interval,
            # Here, in the caller's task: the turn's span is a child of the request's.
            trace=self._tracer.turn(spec),
        )
        # Tracked first: named where other instances look before it can publish anything.
        # (Cancelled meanwhile, the turn never starts; the in-process buffer never waits.)
        await self._buffer.track(turn)
        self.registry.start(turn)
        return turn

    async def _open_turn(self, spec: TurnSpec, terms: LeaseTerms, what: str) -> History:
        """The conversation's lease and history; a lease held by a turn whose instance is gone
        is taken over at once instead of waiting for it to expire."""

        async def open_turn() -> History:
            return await self.store.open_turn(
                spec,
                terms,
                history_limit=self._config.history_limit,
                admit=lambda: self.limits.count_turn(spec.user_id),  # a busy one costs no quota
                what=what,
            )

        try:
            return await open_turn()
        except Busy:
            holder = await self._remote.orphaned(terms.conversation_id) if self._remote else None
            if holder is None:
                raise
        await self.store.release_lease(LeaseTerms(terms.conversation_id, holder, 0))
        return await open_turn()

    async def stop(
        self, conversation_id: str, user_id: str, *, wait_seconds: float
    ) -> TurnOutcome | None:
        """Stop the user's running turn in the conversation and wait (up to `wait_seconds`)
        for its finalizer: its outcome, or None if the commit is still under way.
        `NotFound` for another user's conversation, `Conflict` when no turn runs."""
        running = self.registry.running_turn(conversation_id)
        if running is None or running.spec.user_id != user_id:
            if self._remote is not None:  # it may run on another instance (a new
                # conversation's first turn too: not stored yet, so asked before the owner)
                with contextlib.suppress(Conflict):
                    return await self._remote.stop(
                        conversation_id, user_id, wait_seconds=wait_seconds
                    )
            await self._check_owner(user_id, conversation_id)
            raise Conflict("no turn is running in this conversation")
        self.registry.stop(conversation_id)
        try:
            return await asyncio.wait_for(asyncio.shield(running.outcome), wait_seconds)
        except TimeoutError:
            return None

    async def replay(
        self, conversation_id: str, user_id: str, wire_format: WireFormat[T], after: int
    ) -> AsyncIterator[Batch[T]] | None:
        """The latest turn's items after id `after` (then live ones); None when there is
        nothing to resume; `NotFound` for a conversation that is not the user's."""
        items = await self._buffer.replay(conversation_id, user_id, wire_format, after)
        if items is None:
            await self._check_owner(user_id, conversation_id)
        return items

    async def _check_owner(self, user_id: str, conversation_id: str) -> None:
        if not await self.store.owns(user_id, conversation_id):
            raise NotFound("conversation not found")
