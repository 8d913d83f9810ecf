"""An explicit stop: POST /api/{user}/conversations/{id}/cancel (a closed stream is not one)."""

from __future__ import annotations

import asyncio

import httpx

from chatrelay.turns import Failure, TurnSpec
from tests.conftest import AppFactory, auth, client_for
from tests.fakes.models import FaultyModel, SingleModelProvider
from tests.integration.helpers import SSE, context_of, stored_messages
from tests.sse import done_item, kinds, parse_sse, validate_chatkit


async def _running_turn(
    client: httpx.AsyncClient, model: FaultyModel, *, sse: bool = False
) -> tuple[asyncio.Task[httpx.Response], str]:
    """Start a turn that blocks in the model; return the request and the conversation id."""
    first = await client.post("/api/alice/chat", json={"message": "setup"}, headers=auth())
    conversation_id = first.json()["conversation_id"]
    model.calls.clear()
    model.reached = asyncio.Event()
    model.gate = asyncio.Event()  # never opens: the model waits until stopped
    headers = {**auth(), **SSE} if sse else auth()
    request = asyncio.create_task(
        client.post(
            "/api/alice/chat",
            json={"message": "a long answer please", "conversation_id": conversation_id},
            headers=headers,
        )
    )
    await asyncio.wait_for(model.reached.wait(), timeout=10)
    return request, conversation_id


def _model(after_deltas: int) -> FaultyModel:
    model = FaultyModel(after_deltas=after_deltas)
    model.gate = None
    return model


async def test_stop_keeps_the_partial_reply_as_cancelled(app_factory: AppFactory) -> None:
    model = _model(after_deltas=3)
    app = await app_factory(SingleModelProvider(model))
    async with client_for(app) as client:
        request, conversation_id = await _running_turn(client, model)
        stop = await client.post(
            f"/api/alice/conversations/{conversation_id}/cancel", headers=auth()
        )
        reply = await request

    assert stop.status_code == 200
    assert stop.json()["status"] == "cancelled"
    assert reply.status_code == 200
    assert reply.json()["message"] == "This is chatrelay's "
    assert stop.json()["message_id"] == reply.json()["message_id"]
    assert model.closed  # the run was cancelled: no more tokens
    stored = await stored_messages(app, conversation_id)
    assert [(m.role, m.status) for m in stored][2:] == [
        ("user", "completed"),
        ("assistant", "cancelled"),
    ]


async def test_a_stopped_stream_ends_with_its_final_events_and_no_error(
    app_factory: AppFactory,
) -> None:
    model = _model(after_deltas=2)
    app = await app_factory(SingleModelProvider(model))
    async with client_for(app) as client:
        request, conversation_id = await _running_turn(client, model, sse=True)
        await client.post(f"/api/alice/conversations/{conversation_id}/cancel", headers=auth())
        response = await request

    frames = parse_sse(response.text)
    validate_chatkit(frames)
    assert kinds(frames)[-2:] == ["assistant_message.content_part.done", "thread.item.done"]
    assert done_item(frames)["content"][0]["text"] == "This is "


async def test_a_stop_before_any_output_keeps_nothing(app_factory: AppFactory) -> None:
    model = _model(after_deltas=0)
    app = await app_factory(SingleModelProvider(model))
    async with client_for(app) as client:
        request, conversation_id = await _running_turn(client, model)
        stop = await client.post(
            f"/api/alice/conversations/{conversation_id}/cancel", headers=auth()
        )
        reply = await request

    assert stop.json() == {
        "conversation_id": conversation_id,
        "message_id": None,
        "status": "nothing to keep",
    }
    assert reply.status_code == 409
    assert len(await stored_messages(app, conversation_id)) == 2  # the setup turn only


async def test_stop_needs_a_running_turn_of_ones_own(app_factory: AppFactory) -> None:
    model = _model(after_deltas=1)
    app = await app_factory(SingleModelProvider(model))
    async with client_for(app) as client:
        request, conversation_id = await _running_turn(client, model)
        bobs_try = await client.post(
            f"/api/bob/conversations/{conversation_id}/cancel", headers=auth("bob")
        )
        missing = await client.post("/api/bob/conversations/thr_nope/cancel", headers=auth("bob"))
        not_bob = await client.post(
            f"/api/bob/conversations/{conversation_id}/cancel", headers=auth("alice")
        )
        await client.post(f"/api/alice/conversations/{conversation_id}/cancel", headers=auth())
        await request
        idle = await client.post(
            f"/api/alice/conversations/{conversation_id}/cancel", headers=auth()
        )

    assert bobs_try.status_code == missing.status_code == 404
    assert bobs_try.json() == missing.json()
    assert not_bob.status_code == 403
    assert idle.status_code == 409


async def test_a_stop_before_the_turn_ran_releases_its_lease(app_factory: AppFactory) -> None:
    """Regression: a turn stopped before its first step never ran its finalizer, so its
    conversation stayed busy (409) until the lease expired."""
    app = await app_factory()
    context = context_of(app)
    async with client_for(app) as client:
        first = await client.post("/api/alice/chat", json={"message": "one"}, headers=auth())
        conversation_id = first.json()["conversation_id"]
        spec = TurnSpec(
            user_id="alice",
            conversation_id=conversation_id,
            new_conversation=False,
            user_text="two",
            request_id=None,
            metadata=None,
            correlation_id="c",
            user_message_id="msg_user_two",
            assistant_message_id="msg_reply_two",
        )
        turn = await context.turns.start(spec)
        context.registry.stop(conversation_id)  # before the task's first step
        outcome = await asyncio.wait_for(turn.outcome, timeout=5)
        after = await client.post(
            "/api/alice/chat",
            json={"message": "three", "conversation_id": conversation_id},
            headers=auth(),
        )
    assert (outcome.failure, outcome.status) == (Failure.STOPPED, "cancelled")
    assert after.status_code == 200
