"""`ExactlyOnce`: a request id names one turn. A repeat while it runs attaches to it, a repeat
after its commit gets the stored reply; either way the model runs once."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from chatrelay.turns import (
    Attached,
    Busy,
    Elsewhere,
    Started,
    Stored,
    TextDelta,
    Turn,
    TurnService,
    TurnSpec,
)
from tests.fakes.turns import Block, Fail, InMemoryTurnStore, ScriptedModel
from tests.unit.turns.helpers import ServiceFactory, bounded, logged, message, settled


class Starts:
    """The `start()` an edge hands to `serve()`, counting its calls."""

    def __init__(self, service: TurnService, spec: TurnSpec) -> None:
        self.service = service
        self.spec = spec
        self.calls = 0

    async def __call__(self) -> Turn:
        self.calls += 1
        return await self.service.start(self.spec)


Served = Attached | Stored | Started | Elsewhere


def serve(service: TurnService, start: Starts) -> Coroutine[Any, Any, Served]:
    return service.exactly_once.serve(start.spec, start)


async def test_a_repeat_while_the_turn_runs_attaches_to_it(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    gate = asyncio.Event()
    model = ScriptedModel([TextDelta("only "), Block(gate), TextDelta("once")])
    service = make_service(model)
    first = Starts(service, message("hi", request_id="req-1"))
    repeat = Starts(service, message("hi", request_id="req-1"))  # the client sent it again

    started = await serve(service, first)
    await model.until_blocked()
    attached = await bounded(serve(service, repeat))

    assert isinstance(started, Started) and isinstance(attached, Attached)
    assert attached.turn is started.turn
    assert (first.calls, repeat.calls) == (1, 0)
    gate.set()
    outcome = await settled(started.turn)
    assert outcome.text == "only once"
    assert len(model.requests) == 1
    assert len(store.all_messages()) == 2
    # Whoever attached reads the same events, from the start.
    assert await logged(attached.turn) == started.turn.events


async def test_concurrent_repeats_wait_for_the_first_and_attach(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    conversation_id = store.add_conversation("alice")
    model = ScriptedModel([TextDelta("one reply")])
    service = make_service(model)
    opening = store.hold("open_turn")  # the first request is inside start()
    starts = [
        Starts(service, message("hi", conversation_id=conversation_id, request_id="req-1"))
        for _ in range(3)
    ]

    first = asyncio.create_task(serve(service, starts[0]))
    await opening.until_reached()
    repeats = [asyncio.create_task(serve(service, s)) for s in starts[1:]]
    opening.release()
    answers = await bounded(asyncio.gather(first, *repeats))

    assert isinstance(answers[0], Started)
    assert all(isinstance(a, Attached) and a.turn is answers[0].turn for a in answers[1:])
    assert [s.calls for s in starts] == [1, 0, 0]
    await settled(answers[0].turn)
    assert len(model.requests) == 1
    assert [m.content for m in store.messages_of(conversation_id)] == ["hi", "one reply"]


async def test_a_repeat_after_the_commit_gets_the_stored_reply_without_a_model_run(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("stored "), TextDelta("answer")])
    service = make_service(model)
    spec = message("hi", request_id="req-1", metadata={"k": "v"})
    started = await serve(service, Starts(service, spec))
    assert isinstance(started, Started)
    outcome = await settled(started.turn)

    repeat = Starts(service, message("hi", request_id="req-1"))
    answer = await bounded(serve(service, repeat))

    assert isinstance(answer, Stored)
    assert repeat.calls == 0 and len(model.requests) == 1
    reply, request = answer.reply.reply, answer.reply.request
    assert (request.id, request.request_id, request.metadata) == (
        spec.user_message_id,
        "req-1",
        {"k": "v"},
    )
    assert (reply.id, reply.content, reply.status, reply.created_at) == (
        outcome.message_id,
        "stored answer",
        "completed",
        outcome.created_at,
    )
    assert reply.conversation_id == spec.conversation_id


async def test_a_request_id_is_the_users_own(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("for alice")], [TextDelta("for bob")])
    service = make_service(model)
    alices = await serve(service, Starts(service, message(request_id="req-1")))
    assert isinstance(alices, Started)
    await settled(alices.turn)

    bobs = await serve(service, Starts(service, message(user_id="bob", request_id="req-1")))

    assert isinstance(bobs, Started)
    assert (await settled(bobs.turn)).text == "for bob"


async def test_a_repeat_of_a_turn_that_failed_before_any_output_runs_again(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([Fail()], [TextDelta("second try")])
    service = make_service(model)
    first = await serve(service, Starts(service, message(request_id="req-1")))
    assert isinstance(first, Started)
    assert not (await settled(first.turn)).committed

    again = await serve(service, Starts(service, message(request_id="req-1")))

    assert isinstance(again, Started)  # nothing was stored for it: a retry is a new turn
    assert (await settled(again.turn)).text == "second try"
    assert len(model.requests) == 2


async def test_a_repeat_waiting_on_a_first_request_that_was_refused_tries_itself(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("the repeat's turn")])
    service = make_service(model)
    refuse = asyncio.Event()

    async def refused_start() -> Turn:
        await refuse.wait()
        raise Busy()

    first = asyncio.create_task(
        service.exactly_once.serve(message(request_id="req-1"), refused_start)
    )
    await asyncio.sleep(0)  # the first request holds the claim, inside its start()
    repeat = Starts(service, message(request_id="req-1"))
    second = asyncio.create_task(serve(service, repeat))
    await asyncio.sleep(0)
    assert repeat.calls == 0  # waiting for the first request
    refuse.set()

    results = await bounded(asyncio.gather(first, second, return_exceptions=True))

    assert isinstance(results[0], Busy)
    assert isinstance(results[1], Started) and repeat.calls == 1
    assert (await settled(results[1].turn)).text == "the repeat's turn"


async def test_a_repeat_that_hangs_up_while_waiting_leaves_the_first_request_alone(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    conversation_id = store.add_conversation("alice")
    model = ScriptedModel([TextDelta("unharmed")])
    service = make_service(model)
    opening = store.hold("open_turn")
    repeat = message(conversation_id=conversation_id, request_id="req-1")
    first = asyncio.create_task(serve(service, Starts(service, repeat)))
    await opening.until_reached()
    waiting = asyncio.create_task(serve(service, Starts(service, replace(repeat))))
    await asyncio.sleep(0)

    waiting.cancel()  # the repeat's client went away
    await bounded(asyncio.gather(waiting, return_exceptions=True))
    opening.release()
    answer = await bounded(first)

    assert isinstance(answer, Started)
    assert (await settled(answer.turn)).text == "unharmed"
