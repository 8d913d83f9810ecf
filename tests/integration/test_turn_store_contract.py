"""The `TurnStore` contract, run against `SqlTurnStore` (SQLite and Postgres) and against
`tests.fakes.turns.InMemoryTurnStore`: the fake the turn core's unit tests rely on answers as
the real store does. Every test goes through the protocol alone (a conversation is made by
committing its first turn), except where one deletes a conversation as the history API does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chatrelay.store import create_engine, sessionmaker, transaction, upgrade
from chatrelay.store.repositories import ConversationRepository
from chatrelay.turns import (
    Busy,
    NotFound,
    StoreUnavailable,
    TurnOutcome,
    TurnSpec,
    TurnStore,
    Usage,
    new_id,
)
from chatrelay.turns.spec import utcnow
from chatrelay.turns.sql_store import SqlTurnStore
from chatrelay.turns.store import LeaseTerms
from tests.conftest import POSTGRES_URL, _truncate_all
from tests.fakes.turns import InMemoryTurnStore

Deleter = Callable[[str, str], Awaitable[None]]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def subject(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[TurnStore, Deleter]]:
    """A store, and how to delete a user's conversation behind its back."""
    if request.param == "memory":
        memory = InMemoryTurnStore()

        async def forget(user_id: str, conversation_id: str) -> None:
            assert memory.conversations[conversation_id].user_id == user_id
            memory.delete_conversation(conversation_id)

        yield memory, forget
        return
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'contract.db'}")
        await upgrade(engine)
    else:
        schema: str = request.getfixturevalue("_postgres_test_schema")
        await _truncate_all(schema)
        engine = create_engine(POSTGRES_URL, schema=schema)
    sessions = sessionmaker(engine)

    async def delete(user_id: str, conversation_id: str) -> None:
        async with transaction(sessions) as db:
            conversations = ConversationRepository(db, user_id)
            conversation = await conversations.get(conversation_id)
            assert conversation is not None
            await conversations.delete(conversation)

    try:
        yield SqlTurnStore(sessions), delete
    finally:
        await engine.dispose()


def _spec(
    text: str, *, conversation_id: str | None = None, user_id: str = "alice", **fields: Any
) -> TurnSpec:
    spec = TurnSpec.for_message(
        user_id, text, conversation_id=conversation_id, correlation_id=new_id("corr"), **fields
    )
    spec.started_at = utcnow()
    return spec


def _outcome(spec: TurnSpec, text: str) -> TurnOutcome:
    return TurnOutcome(
        message_id=spec.assistant_message_id,
        text=text,
        created_at=spec.started_at + timedelta(microseconds=1),
        tool_calls=[{"tool_name": "t", "parameters": {"a": 1}, "result": [1, "x"]}],
        usage=Usage(3, 4, 7),
        status="completed",
    )


def _terms(conversation_id: str, holder: str | None = None, ttl: float = 30) -> LeaseTerms:
    return LeaseTerms(conversation_id, holder or new_id("msg"), ttl)


async def _admit() -> None:
    return None


async def _open(
    store: TurnStore, spec: TurnSpec, terms: LeaseTerms | None = None, limit: int = 50
) -> list[tuple[str, str]]:
    terms = terms or _terms(spec.conversation_id, spec.assistant_message_id)
    return await store.open_turn(spec, terms, history_limit=limit, admit=_admit, what="thread")


async def _conversation(store: TurnStore, *exchanges: str, user_id: str = "alice") -> str:
    """A conversation of `user_id` with one committed turn per text ("q" -> "re: q")."""
    first = _spec(exchanges[0], user_id=user_id)
    assert await store.commit_turn(first, _outcome(first, f"re: {exchanges[0]}"), None)
    for text in exchanges[1:]:
        spec = _spec(text, conversation_id=first.conversation_id, user_id=user_id)
        assert await store.commit_turn(spec, _outcome(spec, f"re: {text}"), None)
    return first.conversation_id


Subject = tuple[TurnStore, Deleter]


async def test_a_conversation_that_is_not_the_users_is_not_found(subject: Subject) -> None:
    store, _ = subject
    bobs = await _conversation(store, "hi", user_id="bob")

    for conversation_id in (bobs, "thr_missing"):
        with pytest.raises(NotFound) as refused:
            await _open(store, _spec("x", conversation_id=conversation_id))
        assert refused.value.detail == "thread not found"
    assert await store.owns("bob", bobs)
    assert not await store.owns("alice", bobs)
    assert not await store.owns("alice", "thr_missing")


async def test_a_held_lease_makes_the_conversation_busy_until_its_holder_releases_it(
    subject: Subject,
) -> None:
    store, _ = subject
    conversation_id = await _conversation(store, "hi")
    held = _terms(conversation_id)
    await _open(store, _spec("one", conversation_id=conversation_id), held)

    with pytest.raises(Busy):
        await _open(store, _spec("two", conversation_id=conversation_id))
    await store.release_lease(_terms(conversation_id))  # not the holder: nothing changes
    with pytest.raises(Busy):
        await _open(store, _spec("two", conversation_id=conversation_id))
    assert await store.renew_lease(held)
    assert not await store.renew_lease(_terms(conversation_id))

    await store.release_lease(held)
    assert not await store.renew_lease(held)
    await _open(store, _spec("three", conversation_id=conversation_id))


async def test_an_expired_lease_is_taken_over(subject: Subject) -> None:
    store, _ = subject
    conversation_id = await _conversation(store, "hi")
    crashed = _terms(conversation_id, ttl=-1)  # its holder stopped renewing long ago
    await _open(store, _spec("one", conversation_id=conversation_id), crashed)

    await _open(store, _spec("two", conversation_id=conversation_id))
    with pytest.raises(Busy):
        await _open(store, _spec("three", conversation_id=conversation_id))


async def test_a_turn_refused_by_admit_leaves_no_lease(subject: Subject) -> None:
    store, _ = subject
    conversation_id = await _conversation(store, "hi")

    async def refuse() -> None:
        raise RuntimeError("over the limit")

    with pytest.raises(RuntimeError):
        spec = _spec("one", conversation_id=conversation_id)
        await store.open_turn(
            spec, _terms(conversation_id), history_limit=5, admit=refuse, what="thread"
        )
    await _open(store, _spec("two", conversation_id=conversation_id))  # not busy


async def test_history_is_the_newest_messages_oldest_first(subject: Subject) -> None:
    store, _ = subject
    conversation_id = await _conversation(store, "a", "b", "c")

    history = await _open(store, _spec("d", conversation_id=conversation_id), limit=3)

    assert history == [("assistant", "re: b"), ("user", "c"), ("assistant", "re: c")]


async def test_a_commit_writes_the_pair_and_releases_the_lease(subject: Subject) -> None:
    store, _ = subject
    conversation_id = await _conversation(store, "a")
    spec = _spec("b", conversation_id=conversation_id, request_id="req-b", metadata={"k": 1})
    terms = _terms(conversation_id, spec.assistant_message_id)
    await _open(store, spec, terms)

    assert await store.commit_turn(spec, _outcome(spec, "re: b"), terms)

    history = await _open(store, _spec("c", conversation_id=conversation_id))  # not busy
    assert history[-2:] == [("user", "b"), ("assistant", "re: b")]
    stored = await store.stored_reply(("alice", conversation_id, "req-b"))
    assert stored is not None
    assert (stored.request.id, stored.request.metadata, stored.request.created_at) == (
        spec.user_message_id,
        {"k": 1},
        spec.started_at,
    )
    reply = stored.reply
    assert (reply.id, reply.role, reply.content, reply.status, reply.request_id) == (
        spec.assistant_message_id,
        "assistant",
        "re: b",
        "completed",
        "req-b",
    )
    assert reply.tool_calls == [{"tool_name": "t", "parameters": {"a": 1}, "result": [1, "x"]}]
    assert reply.usage == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}


async def test_a_retry_reads_and_replaces_what_came_after_the_retried_message(
    subject: Subject,
) -> None:
    store, _ = subject
    first = _spec("a")
    assert await store.commit_turn(first, _outcome(first, "re: a"), None)
    conversation_id = first.conversation_id
    second = _spec("b", conversation_id=conversation_id)
    assert await store.commit_turn(second, _outcome(second, "bad"), None)
    retry = TurnSpec(
        user_id="alice",
        conversation_id=conversation_id,
        new_conversation=False,
        user_text="b",
        request_id=None,
        metadata=None,
        correlation_id="c",
        user_message_id=second.user_message_id,
        assistant_message_id=new_id("msg"),
        started_at=second.started_at,
        retry=True,
    )

    terms = _terms(conversation_id, retry.assistant_message_id)
    assert await _open(store, retry, terms) == [("user", "a"), ("assistant", "re: a")]
    outcome = _outcome(retry, "good")
    outcome.created_at = utcnow()
    assert await store.commit_turn(retry, outcome, terms)

    missing = dataclasses.replace(retry, user_message_id="msg_missing")
    with pytest.raises(NotFound) as refused:
        await _open(store, missing)
    assert refused.value.detail == "item not found"
    history = await _open(store, _spec("c", conversation_id=conversation_id))  # not busy
    assert history == [("user", "a"), ("assistant", "re: a"), ("user", "b"), ("assistant", "good")]


async def test_a_commit_to_a_deleted_conversation_writes_nothing(subject: Subject) -> None:
    store, delete = subject
    conversation_id = await _conversation(store, "a")
    spec = _spec("b", conversation_id=conversation_id, request_id="req-b")
    await _open(store, spec)
    await delete("alice", conversation_id)

    assert not await store.commit_turn(spec, _outcome(spec, "re: b"), None)
    assert not await store.owns("alice", conversation_id)
    assert await store.stored_reply(("alice", conversation_id, "req-b")) is None


async def test_a_second_pair_for_one_request_id_is_refused(subject: Subject) -> None:
    store, _ = subject
    first = _spec("a", request_id="req-1")
    assert await store.commit_turn(first, _outcome(first, "re: a"), None)
    again = _spec("a", conversation_id=first.conversation_id, request_id="req-1")

    with pytest.raises(Exception) as refused:  # IntegrityError, Constraint in the fake
        await store.commit_turn(again, _outcome(again, "twice"), None)

    assert not isinstance(refused.value, StoreUnavailable)  # not worth retrying
    history = await _open(store, _spec("b", conversation_id=first.conversation_id))
    assert history == [("user", "a"), ("assistant", "re: a")]


async def test_a_stored_reply_is_found_by_its_request_id_and_user(subject: Subject) -> None:
    store, _ = subject
    opening = _spec("new topic", request_id="req-new")
    assert await store.commit_turn(opening, _outcome(opening, "re: new topic"), None)
    conversation_id = opening.conversation_id
    later = _spec("more", conversation_id=conversation_id, request_id="req-more")
    assert await store.commit_turn(later, _outcome(later, "re: more"), None)

    started = await store.stored_reply(("alice", None, "req-new"))
    assert started is not None and started.reply.content == "re: new topic"
    found = await store.stored_reply(("alice", conversation_id, "req-more"))
    assert found is not None and found.reply.content == "re: more"
    # Without a conversation id only a conversation's first message counts.
    assert await store.stored_reply(("alice", None, "req-more")) is None
    assert await store.stored_reply(("bob", conversation_id, "req-more")) is None
    assert await store.stored_reply(("bob", None, "req-new")) is None
    assert await store.stored_reply(("alice", conversation_id, "req-none")) is None
