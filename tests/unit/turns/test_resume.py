"""Resuming: a reader that names the last event id it got reads the rest, then follows the
turn live; through the log itself and through `TurnService.replay` (the in-process buffer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

import pytest

from chatrelay.turns import TURN_EVENTS, Batch, NotFound, TextDelta, TitleSet, TurnEvent
from chatrelay.turns.log import EventLog
from tests.fakes.turns import Block, InMemoryTurnStore, ScriptedModel
from tests.unit.turns.helpers import ServiceFactory, bounded, logged, message, settled

T = TypeVar("T")

EVENTS: list[TurnEvent] = [TextDelta("a"), TextDelta("b"), TitleSet("t"), TextDelta("c")]


async def _drain(log: EventLog, after: int) -> list[tuple[int, TurnEvent]]:
    return [
        item for batch in await bounded(_rest(log.batches(TURN_EVENTS, after))) for item in batch
    ]


async def _rest(items: AsyncIterator[Batch[T]]) -> list[Batch[T]]:
    return [batch async for batch in items]


@pytest.mark.parametrize("after", range(-1, len(EVENTS)))
async def test_resuming_after_any_id_replays_exactly_the_rest(after: int) -> None:
    log = EventLog()
    for event in EVENTS:
        log.publish(event)
    log.close()

    assert await _drain(log, after) == list(enumerate(EVENTS))[after + 1 :]


async def test_a_resumed_reader_catches_up_in_one_batch_then_follows_live() -> None:
    log = EventLog()
    for event in EVENTS[:3]:
        log.publish(event)
    reader = log.batches(TURN_EVENTS, after=0)

    assert await bounded(anext(reader)) == [(1, EVENTS[1]), (2, EVENTS[2])]
    waiting = asyncio.ensure_future(anext(reader))
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing new yet
    log.publish(EVENTS[3])
    assert await bounded(waiting) == [(3, EVENTS[3])]
    log.close()
    assert await bounded(_rest(reader)) == []


async def test_replay_of_a_finished_turn_gives_the_rest_of_its_events(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("one "), TextDelta("two")])
    service = make_service(model)
    turn = await service.start(message())
    await settled(turn)
    events = turn.events

    for after in range(-1, len(events)):
        items = await service.replay(turn.spec.conversation_id, "alice", TURN_EVENTS, after)
        assert items is not None
        assert [e for batch in await bounded(_rest(items)) for _, e in batch] == events[after + 1 :]


async def test_replay_of_a_running_turn_catches_up_then_follows_it_to_the_end(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    gate = asyncio.Event()
    model = ScriptedModel([TextDelta("before "), Block(gate), TextDelta("after")])
    service = make_service(model)
    turn = await service.start(message())
    await model.until_blocked()
    seen = len(turn.events)  # TurnStarted, UserMessageAccepted, AssistantStarted, TextDelta

    items = await service.replay(turn.spec.conversation_id, "alice", TURN_EVENTS, after=1)
    assert items is not None
    assert [e for _, e in await bounded(anext(items))] == turn.events[2:seen]
    gate.set()
    rest = [e for batch in await bounded(_rest(items)) for _, e in batch]

    assert rest == turn.events[seen:]
    assert rest[0] == TextDelta("after")
    assert await logged(turn, after=1) == turn.events[2:]


async def test_replay_is_for_the_owner_and_only_while_the_turn_is_kept(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    idle_id = store.add_conversation("alice")
    model = ScriptedModel([TextDelta("kept")], [TextDelta("forgotten")])
    service = make_service(model)
    turn = await service.start(message())
    await settled(turn)
    conversation_id = turn.spec.conversation_id

    with pytest.raises(NotFound):  # bob cannot tell it from a missing one
        await service.replay(conversation_id, "bob", TURN_EVENTS, -1)
    with pytest.raises(NotFound):
        await service.replay("thr_missing", "alice", TURN_EVENTS, -1)
    assert await service.replay(idle_id, "alice", TURN_EVENTS, -1) is None  # nothing ran

    forgetful = make_service(model, keep_finished_seconds=0)
    gone = await forgetful.start(message(conversation_id=conversation_id))
    await settled(gone)
    await bounded(forgetful.registry.wait())
    assert await forgetful.replay(conversation_id, "alice", TURN_EVENTS, -1) is None
