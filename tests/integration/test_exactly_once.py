"""A request id names one turn: repeats never run the model twice or write a second pair."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy.exc
from fastapi import FastAPI

from chatrelay.store import Message, transaction
from tests.conftest import AppFactory, auth, client_for
from tests.fakes.models import FaultyModel, SingleModelProvider
from tests.integration.helpers import SSE, context_of, metric, stored_messages, until
from tests.sse import done_item, parse_sse, validate_chatkit


def _recording() -> FaultyModel:
    return FaultyModel(after_deltas=10_000)


async def test_a_repeat_after_completion_returns_the_stored_reply(app_factory: AppFactory) -> None:
    model = _recording()
    app = await app_factory(SingleModelProvider(model))
    body: dict[str, Any] = {"message": "hello", "request_id": "req-1"}
    async with client_for(app) as client:
        first = await client.post("/api/alice/chat", json=body, headers=auth())
        repeat = await client.post("/api/alice/chat", json=body, headers=auth())
        streamed = await client.post("/api/alice/chat", json=body, headers={**auth(), **SSE})

    assert first.status_code == repeat.status_code == 200
    assert repeat.json() == first.json()  # same conversation, same message_id, same text
    frames = parse_sse(streamed.text)
    validate_chatkit(frames)
    assert done_item(frames)["id"] == first.json()["message_id"]
    assert len(model.calls) == 1  # the model ran once
    assert len(await stored_messages(app)) == 2


async def test_concurrent_repeats_attach_to_the_running_turn(app_factory: AppFactory) -> None:
    gate = asyncio.Event()
    model = FaultyModel(after_deltas=2, gate=gate)
    app = await app_factory(SingleModelProvider(model))
    body: dict[str, Any] = {"message": "only once", "request_id": "req-2"}
    async with client_for(app) as client:
        first = asyncio.create_task(client.post("/api/alice/chat", json=body, headers=auth()))
        await asyncio.wait_for(model.reached.wait(), timeout=10)
        json_repeat = asyncio.create_task(client.post("/api/alice/chat", json=body, headers=auth()))
        sse_repeat = asyncio.create_task(
            client.post("/api/alice/chat", json=body, headers={**auth(), **SSE})
        )
        attached = "chatrelay_repeated_requests_total"
        await until(lambda: metric(app, attached, answer="attached") == 2)  # both follow the turn
        gate.set()
        responses = await asyncio.gather(first, json_repeat, sse_repeat)

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert responses[0].json() == responses[1].json()
    frames = parse_sse(responses[2].text)
    validate_chatkit(frames)
    assert done_item(frames)["id"] == responses[0].json()["message_id"]
    assert len(model.calls) == 1
    assert len(await stored_messages(app)) == 2


async def test_the_same_id_in_another_conversation_is_another_turn(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        one = await client.post("/api/alice/chat", json={"message": "a"}, headers=auth())
        two = await client.post("/api/alice/chat", json={"message": "b"}, headers=auth())
        replies = [
            await client.post(
                "/api/alice/chat",
                json={
                    "message": "x",
                    "request_id": "same",
                    "conversation_id": r.json()["conversation_id"],
                },
                headers=auth(),
            )
            for r in (one, two)
        ]
    assert replies[0].json()["message_id"] != replies[1].json()["message_id"]
    assert len(await stored_messages(app)) == 8


async def test_the_database_refuses_a_second_pair_for_one_request_id(
    app: FastAPI, client: Any
) -> None:
    reply = await client.post(
        "/api/alice/chat", json={"message": "x", "request_id": "req-3"}, headers=auth()
    )
    conversation_id = reply.json()["conversation_id"]
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with transaction(context_of(app).sessions) as db:
            db.add(
                Message(
                    id="msg_dup",
                    conversation_id=conversation_id,
                    role="user",
                    content="x",
                    request_id="req-3",
                )
            )


async def test_a_request_id_reused_for_a_new_conversation_is_a_new_turn(
    app_factory: AppFactory,
) -> None:
    """Regression: a new conversation's request id matched a turn of another conversation."""
    app = await app_factory()
    async with client_for(app) as client:
        first = await client.post("/api/alice/chat", json={"message": "a"}, headers=auth())
        conversation_id = first.json()["conversation_id"]
        await client.post(
            "/api/alice/chat",
            json={"message": "b", "request_id": "r1", "conversation_id": conversation_id},
            headers=auth(),
        )
        fresh = await client.post(
            "/api/alice/chat", json={"message": "new topic", "request_id": "r1"}, headers=auth()
        )
    assert fresh.json()["conversation_id"] != conversation_id
    assert fresh.json()["message"].endswith("new topic")
