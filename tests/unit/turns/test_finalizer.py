"""The finalizer: a turn's pair is written once, or not at all, whatever cancels the task
running it and however the store fails for a moment."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from chatrelay.turns import (
    AssistantFinished,
    Failure,
    TextDelta,
    TitleSet,
    TurnEnded,
    TurnFailed,
)
from chatrelay.turns import finalizer as finalizer_module
from chatrelay.turns.finalizer import complete_despite_cancellation
from tests.fakes.turns import Block, Constraint, InMemoryTurnStore, ScriptedModel
from tests.unit.turns.helpers import (
    ServiceFactory,
    bounded,
    failure_message,
    logged,
    message,
    settled,
)


class Storm:
    """`Task.cancel()` at every step of the loop for as long as the task lives; after
    `after` cancels it calls `then()` once (so a held commit goes on under fire)."""

    def __init__(
        self, task: asyncio.Task[None], *, after: int = 0, then: Callable[[], None] | None = None
    ) -> None:
        self.task = task
        self.cancels = 0
        self._after = after
        self._then = then

    async def run(self) -> None:
        while not self.task.done():
            self.task.cancel()
            self.cancels += 1
            if self.cancels == self._after and self._then is not None:
                self._then()
            await asyncio.sleep(0)


async def test_a_cancellation_storm_during_the_commit_cannot_cut_it_short(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    """Regression guard: `anyio.CancelScope(shield=True)` alone lets a second `Task.cancel()`
    abort the commit halfway (see `complete_despite_cancellation`)."""
    model = ScriptedModel([TextDelta("all "), TextDelta("of it")])
    service = make_service(model)
    spec = message("storm")
    commit = store.hold("commit_turn")
    turn = await service.start(spec)
    await commit.until_reached()  # the model is done: the finalizer is committing

    storm = Storm(turn.task, after=200, then=commit.release)
    await bounded(storm.run())

    assert turn.task.cancelled() and storm.cancels > 200
    assert store.interrupted == []  # no store call was cancelled midway
    assert store.commit_attempts == 1
    assert [(m.id, m.role) for m in store.all_messages()] == [
        (spec.user_message_id, "user"),
        (spec.assistant_message_id, "assistant"),
    ]
    outcome = turn.outcome.result()
    assert (outcome.failure, outcome.committed, outcome.text) == (None, True, "all of it")
    events = await logged(turn)
    assert [type(e) for e in events].count(AssistantFinished) == 1
    assert events[-1] == TurnEnded(outcome)


async def test_a_storm_that_starts_mid_stream_cancels_the_model_once_and_commits_once(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    conversation_id = store.add_conversation("alice")
    model = ScriptedModel([TextDelta("interrupted"), Block()])
    service = make_service(model)
    spec = message(conversation_id=conversation_id)
    commit = store.hold("commit_turn")
    turn = await service.start(spec)
    await model.until_blocked()

    storm = asyncio.create_task(Storm(turn.task).run())
    await commit.until_reached()  # the first cancel ended the model; the storm goes on
    for _ in range(100):
        await asyncio.sleep(0)  # a hundred more cancels land on the finalizer
    commit.release()
    await bounded(storm)

    assert model.endings == ["cancelled"]
    assert store.interrupted == []
    assert store.commit_attempts == 1
    assert [(m.content, m.status) for m in store.messages_of(conversation_id)] == [
        (spec.user_text, "completed"),
        ("interrupted", "incomplete"),
    ]
    assert conversation_id not in store.leases
    assert turn.outcome.result().failure is Failure.SHUTDOWN  # cancelled from outside


async def test_complete_despite_cancellation_finishes_the_work_then_re_raises() -> None:
    release = asyncio.Event()
    finished: list[str] = []

    async def work() -> str:
        await release.wait()
        finished.append("work")
        return "done"

    runner = asyncio.create_task(complete_despite_cancellation(work()))
    await asyncio.sleep(0)
    for _ in range(3):
        runner.cancel()
        await asyncio.sleep(0)
    assert not runner.done()  # still waiting for the work, not cancelled halfway
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await bounded(runner)
    assert finished == ["work"]


async def test_complete_despite_cancellation_returns_the_result_when_not_cancelled() -> None:
    async def work() -> int:
        await asyncio.sleep(0)
        return 42

    assert await complete_despite_cancellation(work()) == 42


async def test_a_commit_the_store_refuses_for_a_moment_is_retried(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("saved at last")])
    service = make_service(model)
    spec = message()
    store.fail_commits(1)  # a refused connection, then the real backoff (0.1 s) and a retry

    turn = await service.start(spec)
    outcome = await settled(turn)

    assert store.commit_attempts == 2
    assert (outcome.failure, outcome.committed) == (None, True)
    assert [(m.role, m.content) for m in store.messages_of(spec.conversation_id)] == [
        ("user", spec.user_text),
        ("assistant", "saved at last"),
    ]
    assert not any(isinstance(e, TurnFailed) for e in await logged(turn))


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without the waits between them (2.6 s in all): the schedule is not under test."""
    monkeypatch.setattr(finalizer_module, "COMMIT_BACKOFF_SECONDS", (0.0, 0.0, 0.0))


@pytest.mark.usefixtures("no_backoff")
async def test_a_commit_that_keeps_failing_gives_up_frees_the_lease_and_says_so(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    conversation_id = store.add_conversation("alice", [("user", "one"), ("assistant", "1")])
    model = ScriptedModel([TextDelta("lost")])
    service = make_service(model)
    spec = message(conversation_id=conversation_id)
    store.fail_commits(10)

    turn = await service.start(spec)
    outcome = await settled(turn)

    assert store.commit_attempts == 1 + len(finalizer_module.COMMIT_BACKOFF_SECONDS)
    assert (outcome.failure, outcome.committed) == (Failure.STORAGE, False)
    assert [m.content for m in store.messages_of(conversation_id)] == ["one", "1"]
    assert conversation_id not in store.leases  # released apart, since no commit did
    events = await logged(turn)
    assert not any(isinstance(e, AssistantFinished) for e in events)
    assert events[-2:] == [
        TurnFailed(
            Failure.STORAGE, failure_message("the reply could not be saved, please retry", spec)
        ),
        TurnEnded(outcome),
    ]


@pytest.mark.usefixtures("no_backoff")
async def test_a_new_conversation_whose_commit_fails_leaves_nothing_and_sets_no_title(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    model = ScriptedModel([TextDelta("lost")])
    service = make_service(model)
    store.fail_commits(10)

    turn = await service.start(message("a title that never was"))
    outcome = await settled(turn)

    assert outcome.failure is Failure.STORAGE
    assert store.conversations == {} and store.all_messages() == []
    assert not any(isinstance(e, TitleSet) for e in await logged(turn))


async def test_a_conversation_deleted_mid_turn_is_not_recreated_nor_retried(
    make_service: ServiceFactory, store: InMemoryTurnStore
) -> None:
    conversation_id = store.add_conversation("alice", [("user", "one"), ("assistant", "1")])
    gate = asyncio.Event()
    model = ScriptedModel([TextDelta("orphan"), Block(gate)])
    service = make_service(model)
    turn = await service.start(message(conversation_id=conversation_id))
    await model.until_blocked()

    store.delete_conversation(conversation_id)
    gate.set()
    outcome = await settled(turn)

    assert store.commit_attempts == 1  # "can no longer be written" is not worth a retry
    assert (outcome.failure, outcome.committed) == (Failure.STORAGE, False)
    assert store.conversations == {} and store.all_messages() == []


async def test_a_commit_refused_by_a_constraint_is_not_retried(
    make_service: ServiceFactory, store: InMemoryTurnStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A second pair for one request id, as two processes racing could attempt: the unique
    index refuses it (the in-process claims of `ExactlyOnce` are bypassed here)."""
    conversation_id = store.add_conversation(
        "alice", [("user", "once"), ("assistant", "done")], request_ids=["req-1"]
    )
    model = ScriptedModel([TextDelta("twice")])
    service = make_service(model)

    spec = message("once", conversation_id=conversation_id, request_id="req-1")
    with caplog.at_level(logging.ERROR, logger="chatrelay.turns"):
        outcome = await settled(await service.start(spec))

    assert store.commit_attempts == 1
    assert (outcome.failure, outcome.committed) == (Failure.STORAGE, False)
    assert [m.content for m in store.messages_of(conversation_id)] == ["once", "done"]
    assert conversation_id not in store.leases
    (logged_error,) = [r for r in caplog.records if r.exc_info]
    assert logged_error.exc_info is not None and logged_error.exc_info[0] is Constraint
    assert spec.correlation_id in logged_error.getMessage()
