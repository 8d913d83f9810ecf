"""`chatrelay.runtime.Drain`: what SIGTERM runs before the server may shut down. It begins
once, tells the server (`then`) only after the turns have ended and their streams have
written their final events, for a moment at most, and the runtime's exit waits for it."""

from __future__ import annotations

import asyncio

from chatrelay.runtime import STREAMS_WRITTEN_SECONDS, Drain
from chatrelay.turns import Failure, TextDelta
from tests.fakes.turns import Block, InMemoryTurnStore, ScriptedModel
from tests.unit.turns.helpers import bounded, build_service, message, settled


async def test_the_server_is_told_only_once_the_turns_have_ended() -> None:
    gate = asyncio.Event()
    model = ScriptedModel([TextDelta("almost "), Block(gate), TextDelta("done")])
    service = build_service(model, InMemoryTurnStore())
    turn = await service.start(message())
    await model.until_blocked()
    drain = Drain(service.registry, service.limits, grace_seconds=3600)
    drained: list[str] = []

    drain.begin(then=lambda: drained.append("first"))
    drain.begin(then=lambda: drained.append("second"))  # a repeat does not start another
    await asyncio.sleep(0)
    assert drain.draining and drained == []
    gate.set()
    await bounded(drain.finish())  # the runtime's exit: waits for the drain under way

    assert drained == ["first"]
    assert (await settled(turn)).text == "almost done"


async def test_streams_get_a_moment_to_write_their_final_events() -> None:
    model = ScriptedModel([TextDelta("partial"), Block()])
    service = build_service(model, InMemoryTurnStore())
    turn = await service.start(message())
    await model.until_blocked()
    slot = await service.limits.reserve_stream("alice")  # the turn's stream, still writing
    drain = Drain(service.registry, service.limits, grace_seconds=0)
    drained = asyncio.Event()

    drain.begin(then=drained.set)
    assert (await settled(turn)).failure is Failure.SHUTDOWN
    for _ in range(10):
        await asyncio.sleep(0)
    assert not drained.is_set()  # the server waits for the stream
    slot.release()  # it has written its final events and ended
    await bounded(drained.wait())


async def test_a_stream_that_never_ends_holds_the_drain_only_for_a_moment() -> None:
    """A follower of another instance's turn: the server closes it once the drain is over."""
    service = build_service(ScriptedModel(), InMemoryTurnStore())
    slot = await service.limits.reserve_stream("alice")
    drain = Drain(service.registry, service.limits, grace_seconds=0)
    loop = asyncio.get_running_loop()
    began = loop.time()

    await bounded(drain.finish())

    assert STREAMS_WRITTEN_SECONDS <= loop.time() - began < STREAMS_WRITTEN_SECONDS + 1
    slot.release()


async def test_the_runtime_exit_drains_when_no_signal_did() -> None:
    """An app run by another server (or a test's lifespan): the exit gives the same grace."""
    model = ScriptedModel([TextDelta("partial"), Block()])
    service = build_service(model, InMemoryTurnStore())
    turn = await service.start(message())
    await model.until_blocked()

    await bounded(Drain(service.registry, service.limits, grace_seconds=0).finish())

    outcome = await settled(turn)
    assert (outcome.failure, outcome.status) == (Failure.SHUTDOWN, "incomplete")
