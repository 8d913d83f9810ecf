"""The finalizer: a turn's user + assistant pair is committed together, or not at all,
whatever ends the turn (completion, model failure, client disconnect, timeout, shutdown)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import httpx
import pytest

from chatrelay.chatkit import CHATKIT
from chatrelay.server import create_app
from chatrelay.store import transaction
from chatrelay.store.repositories import ConversationRepository
from chatrelay.turns import Turn, TurnRegistry, TurnSpec
from tests.conftest import AppFactory, Database, auth, client_for, make_settings
from tests.fakes.asgi import body_text, post_and_hang_up
from tests.fakes.models import FaultyModel, SingleModelProvider, connection_error
from tests.integration.helpers import (
    SSE,
    context_of,
    stored_conversations,
    stored_messages,
    wait_for_turns,
)
from tests.sse import done_item, kinds, parse_sse, turn_kinds, validate_chatkit

PREAMBLE = "This is chatrelay's offline model. You said:"


async def test_model_failure_before_output_commits_nothing_json(app_factory: AppFactory) -> None:
    app = await app_factory(SingleModelProvider(FaultyModel(error=connection_error())))
    async with client_for(app) as client:
        response = await client.post("/api/alice/chat", json={"message": "hi"}, headers=auth())

    assert response.status_code == 503
    body = response.json()
    assert body["detail"] == "the model is unavailable, please retry"
    assert body["correlation_id"] == response.headers["x-request-id"]
    # Nothing at all: not even the new conversation (it is written with its first turn).
    assert await stored_messages(app) == []
    assert await stored_conversations(app) == []


async def test_model_failure_before_output_streams_an_error_event(
    app_factory: AppFactory,
) -> None:
    app = await app_factory(SingleModelProvider(FaultyModel(error=connection_error())))
    async with client_for(app) as client:
        response = await client.post(
            "/api/alice/chat", json={"message": "hi"}, headers={**auth(), **SSE}
        )

    frames = parse_sse(response.text)
    validate_chatkit(frames)
    assert kinds(frames) == ["thread.created", "thread.item.done", "error"]
    error = frames[-1].data
    assert error["allow_retry"] is True
    assert error["code"] == "custom"  # so the widget shows our message
    assert response.headers["x-request-id"] in error["message"]
    assert await stored_messages(app) == []


async def test_failure_after_partial_output_commits_an_incomplete_pair(
    app_factory: AppFactory,
) -> None:
    model = FaultyModel(after_deltas=3, error=connection_error())
    app = await app_factory(SingleModelProvider(model))
    async with client_for(app) as client:
        response = await client.post(
            "/api/alice/chat", json={"message": "hello world"}, headers={**auth(), **SSE}
        )

    frames = parse_sse(response.text)
    validate_chatkit(frames)
    assert kinds(frames) == turn_kinds(3, error=True)
    stored = await stored_messages(app)
    assert [(m.role, m.status) for m in stored] == [
        ("user", "completed"),
        ("assistant", "incomplete"),
    ]
    assert stored[1].content == "This is chatrelay's "
    assert done_item(frames)["content"][0]["text"] == stored[1].content


async def test_failure_after_partial_output_json_is_503_and_keeps_the_partial_pair(
    app_factory: AppFactory,
) -> None:
    app = await app_factory(
        SingleModelProvider(FaultyModel(after_deltas=2, error=connection_error()))
    )
    async with client_for(app) as client:
        response = await client.post("/api/alice/chat", json={"message": "hey"}, headers=auth())

    assert response.status_code == 503
    stored = await stored_messages(app)
    assert [m.status for m in stored] == ["completed", "incomplete"]


async def test_unexpected_fault_is_500_with_a_logged_correlation_id(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = await app_factory(SingleModelProvider(FaultyModel(error=RuntimeError("bug"))))
    with caplog.at_level(logging.ERROR, logger="chatrelay"):
        async with client_for(app) as client:
            response = await client.post(
                "/api/alice/chat",
                json={"message": "hi"},
                headers={**auth(), "X-Request-ID": "corr-42"},
            )

    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error", "correlation_id": "corr-42"}
    assert any("corr-42" in record.getMessage() for record in caplog.records)
    assert await stored_messages(app) == []


async def test_client_disconnect_does_not_stop_the_turn(app_factory: AppFactory) -> None:
    gate = asyncio.Event()
    model = FaultyModel(after_deltas=2, gate=gate)
    app = await app_factory(SingleModelProvider(model))

    sent = await post_and_hang_up(
        app, "/api/alice/chat", {"message": "keep going"}, {**auth(), **SSE}, model.reached
    )
    # The client is gone after two deltas; the turn is still running, waiting on the model.
    frames = parse_sse(body_text(sent))
    validate_chatkit(frames)
    assert kinds(frames)[-1] == "assistant_message.content_part.text_delta"
    assert context_of(app).registry.running == 1
    assert await stored_messages(app) == []

    gate.set()
    await wait_for_turns(app)

    stored = await stored_messages(app)
    assert [(m.role, m.status) for m in stored] == [
        ("user", "completed"),
        ("assistant", "completed"),
    ]
    assert stored[1].content == f"{PREAMBLE} keep going"
    assert not model.calls[1:]  # one model call, never restarted


async def test_turn_timeout_cancels_the_run_and_keeps_the_partial_reply(
    app_factory: AppFactory,
) -> None:
    model = FaultyModel(after_deltas=4, gate=asyncio.Event())  # never opens
    app = await app_factory(SingleModelProvider(model), turn_timeout_seconds=0.5)
    async with client_for(app) as client:
        response = await client.post(
            "/api/alice/chat", json={"message": "slow"}, headers={**auth(), **SSE}
        )

    frames = parse_sse(response.text)
    validate_chatkit(frames)
    assert kinds(frames)[-4:] == [
        "assistant_message.content_part.done",
        "thread.item.done",
        "thread.updated",
        "error",
    ]
    assert "took too long" in frames[-1].data["message"]
    assert model.closed  # the model stream was closed: no tokens are spent after the timeout
    stored = await stored_messages(app)
    assert [m.status for m in stored] == ["completed", "incomplete"]
    assert stored[1].content == "This is chatrelay's offline "


async def test_shutdown_cancels_running_turns_and_finalizes_them(
    app_factory: AppFactory,
) -> None:
    model = FaultyModel(after_deltas=3, gate=asyncio.Event())  # never opens
    app = await app_factory(SingleModelProvider(model))
    async with client_for(app) as client:
        request = asyncio.create_task(
            client.post("/api/alice/chat", json={"message": "bye"}, headers=auth())
        )
        await model.reached.wait()
        await context_of(app).registry.shutdown(grace_seconds=0)
        response = await request

    assert response.status_code == 503
    assert response.json()["detail"] == "the server is shutting down, please retry"
    assert model.closed
    stored = await stored_messages(app)
    assert [m.status for m in stored] == ["completed", "incomplete"]
    assert stored[1].content == "This is chatrelay's "


async def test_finalizer_survives_repeated_cancellation(app_factory: AppFactory) -> None:
    """Regression: `anyio.CancelScope(shield=True)` alone lets a second `Task.cancel()` abort
    the commit halfway; the finalizer must still write the pair."""
    model = FaultyModel(after_deltas=2, gate=asyncio.Event())
    app = await app_factory(SingleModelProvider(model))
    registry = context_of(app).registry
    async with client_for(app) as client:
        request = asyncio.create_task(
            client.post("/api/alice/chat", json={"message": "stubborn"}, headers=auth())
        )
        await model.reached.wait()
        (turn,) = registry.running_turns()
        task = turn.task
        for _ in range(2000):
            if task.done():
                break
            task.cancel()
            await asyncio.sleep(0)
        await asyncio.wait([task])
        response = await request

    assert task.cancelled()
    assert response.status_code == 503
    stored = await stored_messages(app)
    assert [m.status for m in stored] == ["completed", "incomplete"]


async def test_history_is_loaded_from_the_database_on_every_turn(
    app_factory: AppFactory,
) -> None:
    model = FaultyModel(after_deltas=10_000)  # never fails: a recording offline model
    app = await app_factory(SingleModelProvider(model), history_limit=3)
    async with client_for(app) as client:
        first = await client.post("/api/alice/chat", json={"message": "one"}, headers=auth())
        conversation_id = first.json()["conversation_id"]
        for text in ("two", "three"):
            await client.post(
                "/api/alice/chat",
                json={"message": text, "conversation_id": conversation_id},
                headers=auth(),
            )

    last_input = model.calls[-1]
    # The newest 3 stored messages, oldest first, then the new message.
    assert [(item["role"], item["content"]) for item in last_input] == [
        ("assistant", f"{PREAMBLE} one"),
        ("user", "two"),
        ("assistant", f"{PREAMBLE} two"),
        ("user", "three"),
    ]


async def test_history_survives_a_server_restart(database: Database) -> None:
    first_app = create_app(make_settings(database), database_schema=database.schema)
    async with first_app.router.lifespan_context(first_app), client_for(first_app) as client:
        first = await client.post(
            "/api/alice/chat", json={"message": "remember me"}, headers=auth()
        )
    conversation_id = first.json()["conversation_id"]
    # The first app is shut down (engine disposed); a new one starts on the same database.

    model = FaultyModel(after_deltas=10_000)
    second_app = create_app(
        make_settings(database),
        provider=SingleModelProvider(model),
        database_schema=database.schema,
    )
    async with second_app.router.lifespan_context(second_app), client_for(second_app) as client:
        second = await client.post(
            "/api/alice/chat",
            json={"message": "do you?", "conversation_id": conversation_id},
            headers=auth(),
        )

    assert second.status_code == 200
    assert [item["content"] for item in model.calls[0]] == [
        "remember me",
        f"{PREAMBLE} remember me",
        "do you?",
    ]


async def test_concurrent_turns_each_commit_their_own_pair(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        responses = await asyncio.gather(
            *(
                client.post("/api/alice/chat", json={"message": f"m{i}"}, headers=auth())
                for i in range(8)
            )
        )
    assert all(response.status_code == 200 for response in responses)
    stored = await stored_messages(app)
    assert len(stored) == 16
    assert len({m.conversation_id for m in stored}) == 8


async def test_readyz_and_healthz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200


async def _cancel_until_done(task: asyncio.Task[None]) -> None:
    """A storm of `Task.cancel()` calls, as long as the task lives."""
    for _ in range(5000):
        if task.done():
            return
        task.cancel()
        await asyncio.sleep(0)


@pytest.mark.parametrize("path", ["completion", "model_failure", "client_disconnect"])
async def test_finalizer_commits_despite_cancellation_on_every_path(
    app_factory: AppFactory, path: str
) -> None:
    """Cancellation arriving while the finalizer runs must not abort its commit (the shield).

    Regression: without it, the storm of cancels interrupts the transaction, nothing is stored.
    """
    error = connection_error() if path == "model_failure" else None
    model = FaultyModel(after_deltas=3 if error else 10_000, error=error)
    app = await app_factory(SingleModelProvider(model))
    registry = context_of(app).registry
    hang_up = asyncio.Event()
    if path == "client_disconnect":
        hang_up.set()  # the client leaves at once; the turn runs on
    request = asyncio.create_task(
        post_and_hang_up(app, "/api/alice/chat", {"message": "storm"}, {**auth(), **SSE}, hang_up)
    )
    await model.ended.wait()  # the model is done: what is left is the finalizer's work
    (turn,) = registry.running_turns()
    task = turn.task
    await _cancel_until_done(task)
    await asyncio.wait([task])
    hang_up.set()
    await request

    stored = await stored_messages(app)
    assert [m.role for m in stored] == ["user", "assistant"]
    if path == "model_failure":
        assert (stored[1].status, stored[1].content) == ("incomplete", "This is chatrelay's ")
    else:
        assert stored[1].content == f"{PREAMBLE} storm"


async def test_conversation_deleted_mid_turn_reports_a_storage_error(
    app_factory: AppFactory,
) -> None:
    gate = asyncio.Event()
    app = await app_factory(SingleModelProvider(FaultyModel(after_deltas=10_000)))
    async with client_for(app) as client:
        first = await client.post("/api/alice/chat", json={"message": "one"}, headers=auth())
    conversation_id = first.json()["conversation_id"]

    gated_model = FaultyModel(after_deltas=1, gate=gate)
    gated_app = await app_factory(SingleModelProvider(gated_model))
    async with client_for(gated_app) as client:
        request = asyncio.create_task(
            client.post(
                "/api/alice/chat",
                json={"message": "two", "conversation_id": conversation_id},
                headers={**auth(), **SSE},
            )
        )
        await gated_model.reached.wait()
        async with transaction(context_of(gated_app).sessions) as db:
            conversation = await ConversationRepository(db, "alice").get(conversation_id)
            assert conversation is not None
            await db.delete(conversation)
        gate.set()
        response = await request

    frames = parse_sse(response.text)
    validate_chatkit(frames)
    assert kinds(frames)[-1] == "error"
    assert "could not be saved" in frames[-1].data["message"]
    assert await stored_messages(gated_app) == []


async def test_a_turn_cancelled_before_it_starts_still_releases_its_readers(
    app_factory: AppFactory,
) -> None:
    app = await app_factory()
    context = context_of(app)
    spec = TurnSpec(
        user_id="alice",
        conversation_id="thr_x",
        new_conversation=True,
        conversation_created_at=datetime.now(UTC),
        user_text="hi",
        history=[],
        request_id=None,
        metadata=None,
        correlation_id="c",
        user_message_id="msg_u",
        assistant_message_id="msg_a",
    )
    turn = Turn(spec, model=context.model, store=context.turns.store, timeout_seconds=5)
    registry = TurnRegistry()
    registry.start(turn)
    turn.task.cancel()  # before its first step: its body never starts

    outcome = await asyncio.wait_for(turn.outcome, timeout=5)
    assert outcome.failure is not None and not outcome.committed
    assert [batch async for batch in turn.batches(CHATKIT)] == []
    assert await stored_messages(app) == []
