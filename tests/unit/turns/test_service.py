"""`TurnService`: one turn per conversation (a lease), whose conversation it is, the
user's quota, the history a turn continues, and stopping a turn."""

from __future__ import annotations

import asyncio

import pytest

from chatrelay.turns import (
    Busy,
    Conflict,
    Failure,
    Invalid,
    NotFound,
    RateLimited,
    TextDelta,
    TurnSpec,
    new_id,
)
from tests.fakes.turns import Block, InMemoryTurnStore, ScriptedModel
from tests.unit.turns.helpers import SETTLE_SECONDS, ServiceFactory, message, settled


async def test_a_busy_conversation_refuses_a_second_turn_without_costing_quota(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    conversation_id = store.add_conversation("alice")
    gate = asyncio.Event()
    model = ScriptedModel([TextDelta("first"), Block(gate)], [TextDelta("second")])
    service = make_service(model, rate_limit="2/minute")
    first = await service.start(message("one", conversation_id=conversation_id))
    await model.until_blocked()

    with pytest.raises(Busy) as refused:
        await service.start(message("two", conversation_id=conversation_id))

    assert refused.value.retry_after > 0
    assert store.leases[conversation_id].holder == first.spec.assistant_message_id
    assert len(model.requests) == 1  # the refused turn never reached the model
    gate.set()
    await settled(first)
    # The quota is 2 turns: had the refusal counted, this one would be rate limited.
    second = await settled(await service.start(message("two", conversation_id=conversation_id)))
    assert (second.failure, second.text) == (None, "second")


async def test_a_turn_over_the_quota_is_refused_and_leaves_no_lease(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    conversations = [store.add_conversation("alice") for _ in range(2)]
    model = ScriptedModel([TextDelta("the only one")])
    service = make_service(model, rate_limit="1/minute")
    await settled(await service.start(message(conversation_id=conversations[0])))

    with pytest.raises(RateLimited) as refused:
        await service.start(message(conversation_id=conversations[1]))

    assert refused.value.retry_after > 0
    assert store.leases == {}  # open_turn's transaction rolled back
    with pytest.raises(RateLimited):  # a new conversation counts against the same quota
        await service.start(message())
    assert len(model.requests) == 1


@pytest.mark.parametrize("what", ["conversation", "thread"])
async def test_another_users_conversation_is_not_found_like_a_missing_one(
    make_service: ServiceFactory, store: InMemoryTurnStore, what: str
) -> None:
    bobs = store.add_conversation("bob", [("user", "secret"), ("assistant", "kept")])
    service = make_service(ScriptedModel())

    with pytest.raises(NotFound) as theirs:
        await service.start(message(conversation_id=bobs), what=what)
    with pytest.raises(NotFound) as missing:
        await service.start(message(conversation_id="thr_missing"), what=what)

    assert theirs.value.detail == missing.value.detail == f"{what} not found"
    assert store.leases == {}


async def test_a_turn_reads_the_newest_history_up_to_the_limit(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    history = [("user", "u1"), ("assistant", "a1"), ("user", "u2"), ("assistant", "a2")]
    conversation_id = store.add_conversation("alice", history)
    model = ScriptedModel([TextDelta("a3")], [TextDelta("a4")])
    service = make_service(model, history_limit=3)

    await settled(await service.start(message("u3", conversation_id=conversation_id)))
    await settled(await service.start(message("u4", conversation_id=conversation_id)))

    assert [request.history for request in model.requests] == [
        [("assistant", "a1"), ("user", "u2"), ("assistant", "a2")],
        [("assistant", "a2"), ("user", "u3"), ("assistant", "a3")],
    ]
    assert [m.content for m in store.messages_of(conversation_id)] == [
        "u1",
        "a1",
        "u2",
        "a2",
        "u3",
        "a3",
        "u4",
        "a4",
    ]


async def test_a_retry_replaces_the_reply_after_the_retried_message(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    history = [("user", "u1"), ("assistant", "a1"), ("user", "u2"), ("assistant", "bad")]
    conversation_id = store.add_conversation("alice", history)
    retried = store.messages_of(conversation_id)[2]
    model = ScriptedModel([TextDelta("good")])
    service = make_service(model)
    spec = TurnSpec(
        user_id="alice",
        conversation_id=conversation_id,
        new_conversation=False,
        user_text=retried.content,
        request_id=None,
        metadata=None,
        correlation_id="corr-retry",
        user_message_id=retried.id,
        assistant_message_id=new_id("msg"),
        started_at=retried.created_at,
        retry=True,
    )

    turn = await service.start(spec)
    outcome = await settled(turn)

    assert model.requests[0].history == [("user", "u1"), ("assistant", "a1")]
    assert [(m.role, m.content) for m in store.messages_of(conversation_id)] == [
        ("user", "u1"),
        ("assistant", "a1"),
        ("user", "u2"),
        ("assistant", "good"),
    ]
    assert outcome.committed
    assert "UserMessageAccepted" not in [type(e).__name__ for e in turn.events]


async def test_a_model_outside_the_allow_list_is_refused_before_anything_runs(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("from the picked model")])
    service = make_service(model, default_model="small", model_allowlist=("large",))

    with pytest.raises(Invalid):
        await service.start(message(model="huge"))
    outcome = await settled(await service.start(message(model="large")))

    assert outcome.text == "from the picked model"
    assert [request.model for request in model.requests] == ["large"]


async def test_the_lease_is_renewed_while_the_turn_runs(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    conversation_id = store.add_conversation("alice")
    gate = asyncio.Event()
    model = ScriptedModel([TextDelta("slow"), Block(gate)])
    service = make_service(model, lease_seconds=0.03)  # renewed every 10 ms
    turn = await service.start(message(conversation_id=conversation_id))
    taken = store.leases[conversation_id]

    await asyncio.wait_for(store.renewed.wait(), SETTLE_SECONDS)

    renewed = store.leases[conversation_id]
    assert renewed.holder == taken.holder == turn.spec.assistant_message_id
    assert renewed.expires_at > taken.expires_at
    gate.set()
    assert (await settled(turn)).committed
    assert conversation_id not in store.leases


async def test_stop_needs_a_running_turn_of_the_users_own(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    conversation_id = store.add_conversation("alice")
    idle_id = store.add_conversation("alice")
    model = ScriptedModel([TextDelta("mine"), Block()])
    service = make_service(model)
    turn = await service.start(message(conversation_id=conversation_id))
    await model.until_blocked()

    with pytest.raises(NotFound):  # bob cannot tell alice's conversation from a missing one
        await service.stop(conversation_id, "bob", wait_seconds=1)
    with pytest.raises(NotFound):
        await service.stop("thr_missing", "bob", wait_seconds=1)
    with pytest.raises(Conflict) as idle:
        await service.stop(idle_id, "alice", wait_seconds=1)
    assert not isinstance(idle.value, Busy)
    assert not turn.outcome.done()  # none of those touched the running turn

    outcome = await service.stop(conversation_id, "alice", wait_seconds=5)
    assert outcome is not None and outcome.failure is Failure.STOPPED
    with pytest.raises(Conflict):  # stopped: nothing runs any more
        await service.stop(conversation_id, "alice", wait_seconds=1)


async def test_stop_answers_none_while_the_stopped_turn_is_still_committing(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("partial"), Block()])
    service = make_service(model)
    turn = await service.start(message())
    await model.until_blocked()
    commit = store.hold("commit_turn")

    outcome = await service.stop(turn.spec.conversation_id, "alice", wait_seconds=0.01)

    assert outcome is None
    await commit.until_reached()
    commit.release()
    final = await settled(turn)  # the wait ended, the commit did not
    assert (final.failure, final.committed, final.text) == (Failure.STOPPED, True, "partial")
