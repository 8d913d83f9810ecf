"""The registry's shutdown, as a drain: no new turn admitted from its start, the running ones
given the grace (all of it, also a turn admitted just before), and `hurry` ending it early."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.turns import Failure, ShuttingDown, TextDelta, TurnEnded, TurnFailed
from tests.fakes.turns import Block, InMemoryTurnStore, ScriptedModel
from tests.unit.turns.helpers import (
    SETTLE_SECONDS,
    ServiceFactory,
    bounded,
    failure_message,
    logged,
    message,
    settled,
)


async def test_a_draining_registry_admits_no_new_turn_and_takes_no_lease(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    gate = asyncio.Event()
    model = ScriptedModel([TextDelta("running"), Block(gate)])
    service = make_service(model)
    running = await service.start(message())
    await model.until_blocked()
    conversation_id = store.add_conversation("alice")

    shutdown = asyncio.create_task(service.registry.shutdown(grace_seconds=SETTLE_SECONDS))
    await asyncio.sleep(0)  # one step: the drain has begun
    assert service.registry.draining
    with pytest.raises(ShuttingDown) as refused:
        await service.start(message("too late", conversation_id=conversation_id))
    with pytest.raises(ShuttingDown):
        await service.start(message("a new conversation"))

    assert refused.value.detail == Failure.SHUTDOWN.value
    assert conversation_id not in store.leases
    assert len(model.requests) == 1  # only the running turn reached the model
    gate.set()
    await bounded(shutdown)
    assert (await settled(running)).failure is None  # it finished within the grace


async def test_a_turn_admitted_just_before_the_drain_gets_the_whole_grace(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    """The drain waits for what runs until the deadline, not for a snapshot taken at its
    start: a turn still opening then (its lease query in flight) is not stopped early."""
    first_gate, late_gate = asyncio.Event(), asyncio.Event()
    model = ScriptedModel(
        [TextDelta("first"), Block(first_gate)], [TextDelta("late"), Block(late_gate)]
    )
    service = make_service(model)
    first = await service.start(message("first"))
    await model.until_blocked()
    opening = store.hold("open_turn")
    late_start = asyncio.create_task(
        service.start(message("late", conversation_id=store.add_conversation("alice")))
    )
    await opening.until_reached()  # admitted, not yet registered

    shutdown = asyncio.create_task(service.registry.shutdown(grace_seconds=SETTLE_SECONDS))
    await asyncio.sleep(0)
    opening.release()
    late = await bounded(late_start)
    await model.until_blocked(calls=2)
    first_gate.set()
    await settled(first)  # the turns the drain saw at its start have all ended
    for _ in range(20):  # loop steps enough for a drain to stop a turn and finalize it
        await asyncio.sleep(0)

    assert not late.outcome.done() and not shutdown.done()  # the grace goes on for it
    late_gate.set()
    await bounded(shutdown)
    assert (await settled(late)).failure is None


async def test_hurry_stops_the_running_turns_before_the_grace_is_over(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("partial"), Block()])
    service = make_service(model)
    turn = await service.start(message())
    await model.until_blocked()
    hurry = asyncio.Event()

    shutdown = asyncio.create_task(service.registry.shutdown(grace_seconds=3600, hurry=hurry))
    await asyncio.sleep(0)
    assert not shutdown.done()
    hurry.set()  # a second SIGTERM
    await bounded(shutdown)

    outcome = await settled(turn)
    assert (outcome.failure, outcome.status, outcome.text) == (
        Failure.SHUTDOWN,
        "incomplete",
        "partial",
    )
    assert (await logged(turn))[-2:] == [
        TurnFailed(Failure.SHUTDOWN, failure_message(Failure.SHUTDOWN.value, turn.spec)),
        TurnEnded(outcome),
    ]
    assert [m.status for m in store.messages_of(turn.spec.conversation_id)] == [
        "completed",
        "incomplete",
    ]


async def test_an_idle_registry_drains_at_once(make_service: ServiceFactory) -> None:
    service = make_service(ScriptedModel())
    await asyncio.wait_for(service.registry.shutdown(grace_seconds=3600), SETTLE_SECONDS)
    assert service.registry.draining
