"""Every way a turn ends, driven through `TurnService` on the fakes: what is committed (the
user + assistant pair, or nothing) and the typed events its log carries, in order."""

from __future__ import annotations

import asyncio

from chatrelay.turns import (
    AssistantFinished,
    AssistantStarted,
    Failure,
    ModelRequest,
    TextDelta,
    TitleSet,
    ToolCallArguments,
    ToolCallFinished,
    ToolCallStarted,
    TurnEnded,
    TurnFailed,
    TurnSpec,
    TurnStarted,
    Usage,
    UserMessageAccepted,
)
from tests.fakes.turns import Block, Fail, InMemoryTurnStore, ScriptedModel, Spend
from tests.unit.turns.helpers import (
    SETTLE_SECONDS,
    ServiceFactory,
    bounded,
    failure_message,
    logged,
    message,
    settled,
)


def _opening(spec: TurnSpec) -> list[object]:
    """The first two events of every turn that ran (not a retry)."""
    return [
        TurnStarted(
            conversation_id=spec.conversation_id,
            new_conversation=spec.new_conversation,
            conversation_created_at=spec.conversation_created_at,
            offer_stop=spec.offer_stop,
            retry=False,
        ),
        UserMessageAccepted(spec.user_message_id, spec.user_text, spec.user_parts, spec.started_at),
    ]


def _pair(store: InMemoryTurnStore, spec: TurnSpec) -> list[tuple[str, str, str, str]]:
    """(id, role, content, status) of each stored message of the spec's conversation."""
    return [(m.id, m.role, m.content, m.status) for m in store.messages_of(spec.conversation_id)]


async def test_a_completed_turn_commits_the_pair_of_a_new_conversation(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("Hello"), TextDelta(", "), TextDelta("Alice"), Spend(12, 3)])
    service = make_service(model)
    spec = message("hi there, how are you", request_id="req-1", metadata={"via": "test"})

    turn = await service.start(spec)
    outcome = await settled(turn)

    assert (outcome.failure, outcome.status, outcome.committed) == (None, "completed", True)
    assert (outcome.text, outcome.usage, outcome.tool_calls) == (
        "Hello, Alice",
        Usage(12, 3, 15),
        [],
    )
    assert _pair(store, spec) == [
        (spec.user_message_id, "user", "hi there, how are you", "completed"),
        (spec.assistant_message_id, "assistant", "Hello, Alice", "completed"),
    ]
    user, reply = store.messages_of(spec.conversation_id)
    assert (user.request_id, user.metadata, user.created_at) == (
        "req-1",
        {"via": "test"},
        spec.started_at,
    )
    assert reply.usage == {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}
    assert reply.created_at == outcome.created_at > spec.started_at
    conversation = store.conversations[spec.conversation_id]
    assert (conversation.user_id, conversation.title) == ("alice", "hi there, how are you")
    assert model.requests == [ModelRequest("alice", spec.conversation_id, [], spec.user_text)]
    model.assert_complete()

    assert await logged(turn) == [
        *_opening(spec),
        AssistantStarted(spec.assistant_message_id, outcome.created_at),
        TextDelta("Hello"),
        TextDelta(", "),
        TextDelta("Alice"),
        AssistantFinished(
            spec.assistant_message_id, "Hello, Alice", "completed", outcome.created_at
        ),
        TitleSet("hi there, how are you"),
        TurnEnded(outcome),
    ]


async def test_a_completed_turn_with_tool_calls_continues_the_history_and_frees_the_lease(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    conversation_id = store.add_conversation(
        "alice", [("user", "I need milk"), ("assistant", "Shall I add it?")]
    )
    added = {"id": 7, "title": "milk", "status": "created"}
    model = ScriptedModel(
        [
            ToolCallStarted("call_1", "add_task"),
            ToolCallArguments("call_1", "add_task", {"title": "milk"}),
            ToolCallFinished("call_1", added),
            # A provider may skip the early signal; a result for no known call is dropped.
            ToolCallArguments("call_2", "list_tasks", {}),
            ToolCallFinished("call_9", "stray"),
            ToolCallFinished("call_2", [added]),
            TextDelta("Added milk."),
        ]
    )
    service = make_service(model)
    spec = message("yes please", conversation_id=conversation_id)

    turn = await service.start(spec)
    assert store.leases[conversation_id].holder == spec.assistant_message_id
    outcome = await settled(turn)

    calls = [
        {"tool_name": "add_task", "parameters": {"title": "milk"}, "result": added},
        {"tool_name": "list_tasks", "parameters": {}, "result": [added]},
    ]
    assert (outcome.failure, outcome.committed, outcome.tool_calls) == (None, True, calls)
    assert model.requests[0].history == [("user", "I need milk"), ("assistant", "Shall I add it?")]
    stored = store.messages_of(conversation_id)
    assert [(m.role, m.content) for m in stored[2:]] == [
        ("user", "yes please"),
        ("assistant", "Added milk."),
    ]
    assert stored[3].tool_calls == calls
    assert conversation_id not in store.leases  # released by the commit, in its transaction
    assert store.conversations[conversation_id].updated_at == outcome.created_at

    assert await logged(turn) == [
        *_opening(spec),
        AssistantStarted(spec.assistant_message_id, outcome.created_at),
        ToolCallStarted("call_1", "add_task"),
        ToolCallArguments("call_1", "add_task", {"title": "milk"}),
        ToolCallFinished("call_1", added),
        ToolCallStarted("call_2", "list_tasks"),
        ToolCallArguments("call_2", "list_tasks", {}),
        ToolCallFinished("call_2", [added]),
        TextDelta("Added milk."),
        AssistantFinished(
            spec.assistant_message_id, "Added milk.", "completed", outcome.created_at
        ),
        TurnEnded(outcome),  # no title: the conversation had one turn already
    ]


async def test_a_model_failure_before_any_output_commits_nothing(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    conversation_id = store.add_conversation("alice", [("user", "one"), ("assistant", "1")])
    model = ScriptedModel([Fail()])
    service = make_service(model)
    spec = message("two", conversation_id=conversation_id)

    turn = await service.start(spec)
    outcome = await settled(turn)

    assert (outcome.failure, outcome.committed, outcome.status) == (
        Failure.MODEL,
        False,
        "incomplete",
    )
    assert [m.content for m in store.messages_of(conversation_id)] == ["one", "1"]
    assert store.commit_attempts == 0
    assert conversation_id not in store.leases  # released: the next turn may start
    assert model.endings == ["raised"]
    assert await logged(turn) == [
        *_opening(spec),
        TurnFailed(Failure.MODEL, failure_message("the model is unavailable, please retry", spec)),
        TurnEnded(outcome),
    ]


async def test_a_model_failure_after_partial_output_commits_it_as_incomplete(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("Half an "), TextDelta("answ"), Spend(5, 2), Fail()])
    service = make_service(model)
    spec = message("tell me everything")

    turn = await service.start(spec)
    outcome = await settled(turn)

    assert (outcome.failure, outcome.committed) == (Failure.MODEL, True)
    assert _pair(store, spec) == [
        (spec.user_message_id, "user", "tell me everything", "completed"),
        (spec.assistant_message_id, "assistant", "Half an answ", "incomplete"),
    ]
    assert store.messages_of(spec.conversation_id)[1].usage == {
        "input_tokens": 5,
        "output_tokens": 2,
        "total_tokens": 7,
    }
    assert await logged(turn) == [
        *_opening(spec),
        AssistantStarted(spec.assistant_message_id, outcome.created_at),
        TextDelta("Half an "),
        TextDelta("answ"),
        AssistantFinished(
            spec.assistant_message_id, "Half an answ", "incomplete", outcome.created_at
        ),
        TitleSet("tell me everything"),  # the conversation exists now
        TurnFailed(Failure.MODEL, failure_message("the model is unavailable, please retry", spec)),
        TurnEnded(outcome),
    ]


async def test_an_unexpected_model_error_is_an_internal_failure(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("so far"), Fail(RuntimeError("a bug in an adapter"))])
    service = make_service(model)
    spec = message()

    outcome = await settled(await service.start(spec))

    assert (outcome.failure, outcome.committed, outcome.status) == (
        Failure.INTERNAL,
        True,
        "incomplete",
    )
    assert [m.content for m in store.messages_of(spec.conversation_id)] == [
        spec.user_text,
        "so far",
    ]


async def test_a_turn_that_times_out_is_cancelled_and_keeps_its_partial_reply(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("Still "), TextDelta("thinking"), Block()])  # never ends
    service = make_service(model, timeout_seconds=0.01)
    spec = message("a hard question")

    turn = await service.start(spec)
    outcome = await settled(turn)

    assert model.cancelled  # the model run is over: no tokens are spent after the timeout
    assert (outcome.failure, outcome.committed) == (Failure.TIMEOUT, True)
    assert _pair(store, spec)[1] == (
        spec.assistant_message_id,
        "assistant",
        "Still thinking",
        "incomplete",
    )
    assert (await logged(turn))[-4:] == [
        AssistantFinished(
            spec.assistant_message_id, "Still thinking", "incomplete", outcome.created_at
        ),
        TitleSet("a hard question"),
        TurnFailed(
            Failure.TIMEOUT, failure_message("the turn took too long and was stopped", spec)
        ),
        TurnEnded(outcome),
    ]


async def test_an_explicit_stop_cancels_the_model_and_keeps_the_partial_reply(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    conversation_id = store.add_conversation("alice", [("user", "hi"), ("assistant", "hello")])
    model = ScriptedModel([TextDelta("Once "), TextDelta("upon"), Block()])
    service = make_service(model)
    spec = message("a story", conversation_id=conversation_id)
    turn = await service.start(spec)
    await model.until_blocked()

    outcome = await service.stop(conversation_id, "alice", wait_seconds=5)

    assert outcome is not None and outcome is turn.outcome.result()
    assert model.cancelled
    assert (outcome.failure, outcome.committed, outcome.status) == (
        Failure.STOPPED,
        True,
        "cancelled",
    )
    assert _pair(store, spec)[2:] == [
        (spec.user_message_id, "user", "a story", "completed"),
        (spec.assistant_message_id, "assistant", "Once upon", "cancelled"),
    ]
    assert conversation_id not in store.leases
    assert service.registry.running_turn(conversation_id) is None
    assert await logged(turn) == [  # a stop is not an error: no TurnFailed
        *_opening(spec),
        AssistantStarted(spec.assistant_message_id, outcome.created_at),
        TextDelta("Once "),
        TextDelta("upon"),
        AssistantFinished(spec.assistant_message_id, "Once upon", "cancelled", outcome.created_at),
        TurnEnded(outcome),
    ]


async def test_a_stop_before_the_turn_ran_skips_the_model_and_frees_the_conversation(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    conversation_id = store.add_conversation("alice", [("user", "hi"), ("assistant", "hello")])
    model = ScriptedModel([TextDelta("next turn")])
    service = make_service(model)
    spec = message("wait, no", conversation_id=conversation_id)

    turn = await service.start(spec)
    assert not turn.events  # its task has not taken a step yet
    outcome = await service.stop(conversation_id, "alice", wait_seconds=5)

    assert outcome is not None
    assert (outcome.failure, outcome.committed, outcome.status) == (
        Failure.STOPPED,
        False,
        "cancelled",
    )
    assert model.requests == []
    assert store.commit_attempts == 0
    assert conversation_id not in store.leases
    assert await logged(turn) == [*_opening(spec), TurnEnded(outcome)]
    # Free at once, not when the lease expires: the next turn runs (and is the model's first).
    after = await settled(await service.start(message("go on", conversation_id=conversation_id)))
    assert (after.failure, after.text) == (None, "next turn")


async def test_a_turn_cancelled_before_its_first_step_is_settled_by_the_registry(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    conversation_id = store.add_conversation("alice")
    model = ScriptedModel()
    service = make_service(model)
    spec = message(conversation_id=conversation_id)

    turn = await service.start(spec)
    turn.task.cancel()  # its body never starts, so no finalizer of its own
    await bounded(service.registry.wait())

    outcome = await settled(turn)
    assert (outcome.failure, outcome.committed) == (Failure.SHUTDOWN, False)
    assert await logged(turn) == [TurnEnded(outcome)]
    assert conversation_id not in store.leases  # released by the registry's clean-up
    assert model.requests == []


async def test_shutdown_cancels_running_turns_and_commits_them(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("first"), Block()], [TextDelta("second"), Block()])
    service = make_service(model)
    specs = [message("one"), message("two")]
    turns = [await service.start(spec) for spec in specs]
    await model.until_blocked(calls=2)

    await bounded(service.registry.shutdown(grace_seconds=0))

    assert service.registry.running == 0
    assert model.endings == ["cancelled", "cancelled"]
    for spec, turn, text in zip(specs, turns, ["first", "second"], strict=True):
        outcome = turn.outcome.result()
        assert (outcome.failure, outcome.committed, outcome.status) == (
            Failure.SHUTDOWN,
            True,
            "incomplete",
        )
        assert [m.content for m in store.messages_of(spec.conversation_id)] == [
            spec.user_text,
            text,
        ]
        assert (await logged(turn))[-2:] == [
            TurnFailed(
                Failure.SHUTDOWN, failure_message("the server is shutting down, please retry", spec)
            ),
            TurnEnded(outcome),
        ]


async def test_shutdown_lets_a_turn_that_ends_within_the_grace_period_complete(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    gate = asyncio.Event()
    model = ScriptedModel([TextDelta("almost "), Block(gate), TextDelta("done")])
    service = make_service(model)
    turn = await service.start(message())
    await model.until_blocked()

    shutdown = asyncio.create_task(service.registry.shutdown(grace_seconds=SETTLE_SECONDS))
    await asyncio.sleep(0)  # one step: the shutdown now waits for the turn
    assert not shutdown.done()
    gate.set()
    await bounded(shutdown)

    outcome = turn.outcome.result()
    assert (outcome.failure, outcome.text, outcome.committed) == (None, "almost done", True)
    assert model.endings == ["completed"]
