"""`ExactlyOnce` with shared claims (several instances): a request id claimed by another
instance is served there (`Elsewhere`), never run here; our claim is taken before the store
is asked and released once our turn is settled, or at once when no turn started."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

import pytest

from chatrelay.turns import (
    TURN_EVENTS,
    Batch,
    Busy,
    Elsewhere,
    LiveEventsUnavailable,
    RequestKey,
    Started,
    Stored,
    TextDelta,
    Turn,
    WireFormat,
)
from chatrelay.turns.claims import TurnNames
from tests.fakes.turns import Block, InMemoryTurnStore, ScriptedModel
from tests.unit.turns.helpers import bounded, build_service, message, settled

T = TypeVar("T")


class SharedClaimsFake:
    """Claims as Redis keeps them for every instance; `held_elsewhere` plays another one."""

    def __init__(self) -> None:
        self.held: dict[RequestKey, TurnNames] = {}
        self.elsewhere: set[RequestKey] = set()
        self.released: list[tuple[RequestKey, TurnNames]] = []
        self.released_event = asyncio.Event()

    async def claim(self, key: RequestKey, turn: TurnNames) -> Elsewhere | None:
        if key in self.held and key in self.elsewhere:
            return Elsewhere(*self.held[key], "other")
        self.held[key] = turn
        return None

    async def release(self, key: RequestKey, turn: TurnNames) -> None:
        if self.held.get(key) == turn:
            del self.held[key]
        self.released.append((key, turn))
        self.released_event.set()

    async def follow(
        self, elsewhere: Elsewhere, wire_format: WireFormat[T]
    ) -> AsyncIterator[Batch[T]] | None:
        return None


@pytest.fixture
def shared() -> SharedClaimsFake:
    return SharedClaimsFake()


async def test_a_request_claimed_elsewhere_is_not_run_here(
    shared: SharedClaimsFake, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("never")])
    service = build_service(model, store, claims=shared)
    spec = message(request_id="req-1")
    key = ("alice", None, "req-1")
    shared.held[key] = ("thr_other", "msg_other")  # another instance's turn
    shared.elsewhere.add(key)

    async def start() -> Turn:
        raise AssertionError("a request served elsewhere must not start here")

    answer = await service.exactly_once.serve(spec, start)

    assert answer == Elsewhere("thr_other", "msg_other", "other")
    assert model.requests == [] and shared.released == []  # the claim is the other's
    with pytest.raises(LiveEventsUnavailable):  # nothing to follow yet, nothing stored
        await service.exactly_once.follow(spec, answer, TURN_EVENTS)


async def test_our_claim_is_released_once_the_turn_is_committed(
    shared: SharedClaimsFake, store: InMemoryTurnStore
) -> None:
    gate = asyncio.Event()
    model = ScriptedModel([TextDelta("once"), Block(gate)])
    service = build_service(model, store, claims=shared)
    spec = message(request_id="req-1")
    names = (spec.conversation_id, spec.assistant_message_id)

    started = await service.exactly_once.serve(spec, lambda: service.start(spec))

    assert isinstance(started, Started)
    assert shared.held == {("alice", None, "req-1"): names}  # claimed before the turn started
    await model.until_blocked()
    assert shared.released == []  # held while it runs
    gate.set()
    assert (await settled(started.turn)).committed
    await bounded(shared.released_event.wait())
    assert shared.released == [(("alice", None, "req-1"), names)] and shared.held == {}


async def test_a_request_that_starts_no_turn_releases_its_claim_at_once(
    shared: SharedClaimsFake, store: InMemoryTurnStore
) -> None:
    service = build_service(ScriptedModel([TextDelta("x")]), store, claims=shared)
    spec = message(request_id="req-1")

    async def refused() -> Turn:
        raise Busy()

    with pytest.raises(Busy):
        await service.exactly_once.serve(spec, refused)
    await bounded(shared.released_event.wait())
    assert shared.held == {}


async def test_a_committed_request_is_answered_from_the_store_after_claiming(
    shared: SharedClaimsFake, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("stored")])
    service = build_service(model, store, claims=shared)
    spec = message(request_id="req-1")
    first = await service.exactly_once.serve(spec, lambda: service.start(spec))
    assert isinstance(first, Started)
    await settled(first.turn)
    await bounded(shared.released_event.wait())
    shared.released_event.clear()

    again = message(request_id="req-1")
    answer = await service.exactly_once.serve(again, lambda: service.start(again))

    assert isinstance(answer, Stored) and answer.reply.reply.content == "stored"
    await bounded(shared.released_event.wait())  # claimed to ask the store, then let go
    assert shared.held == {} and len(model.requests) == 1
