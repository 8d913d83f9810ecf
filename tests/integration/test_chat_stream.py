"""The streamed answer: ChatKit events, in ChatKit's order, as they are produced."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.conftest import auth
from tests.integration.helpers import SSE, stored_messages
from tests.sse import done_item, kinds, parse_sse, turn_kinds, validate_chatkit

PLAIN_TURN_NEW = turn_kinds(9)


async def test_new_conversation_streams_chatkit_events_in_order(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    response = await client.post(
        "/api/alice/chat", json={"message": "Hello there"}, headers={**auth(), **SSE}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"  # sse-starlette's, not weaker
    assert response.headers["x-accel-buffering"] == "no"
    frames = parse_sse(response.text)
    validate_chatkit(frames)
    assert kinds(frames) == PLAIN_TURN_NEW
    assert [frame.id for frame in frames] == [str(i) for i in range(len(frames))]

    thread_id = frames[0].data["thread"]["id"]
    user_item = frames[1].data["item"]
    assert user_item["type"] == "user_message"
    assert user_item["thread_id"] == thread_id
    assert user_item["content"] == [{"type": "input_text", "text": "Hello there"}]
    deltas = "".join(f.data["update"]["delta"] for f in frames[4:-3])
    final = done_item(frames)
    assert final["type"] == "assistant_message"
    assert final["content"][0]["text"] == deltas
    assert deltas.endswith("You said: Hello there")
    assert frames[2].data["item"]["id"] == final["id"]
    titled = frames[-1].data["thread"]
    assert (titled["id"], titled["title"]) == (thread_id, "Hello there")

    stored = await stored_messages(app, thread_id)
    assert [(m.id, m.role, m.status) for m in stored] == [
        (user_item["id"], "user", "completed"),
        (final["id"], "assistant", "completed"),
    ]
    assert stored[1].content == deltas


async def test_existing_conversation_has_no_thread_created(client: httpx.AsyncClient) -> None:
    first = await client.post("/api/alice/chat", json={"message": "one"}, headers=auth())
    conversation_id = first.json()["conversation_id"]

    response = await client.post(
        "/api/alice/chat",
        json={"message": "two words", "conversation_id": conversation_id},
        headers={**auth(), **SSE},
    )

    frames = parse_sse(response.text)
    validate_chatkit(frames)
    assert kinds(frames)[:2] == ["thread.item.done", "thread.item.added"]
    assert "thread.created" not in kinds(frames)
    assert all(
        f.data.get("item", {}).get("thread_id", conversation_id) == conversation_id for f in frames
    )


async def test_one_text_delta_per_word(client: httpx.AsyncClient) -> None:
    words = [f"w{i}" for i in range(200)]
    response = await client.post(
        "/api/alice/chat", json={"message": " ".join(words)}, headers={**auth(), **SSE}
    )

    frames = parse_sse(response.text)
    validate_chatkit(frames)
    deltas = [f for f in frames if f.update_type and "text_delta" in f.update_type]
    assert len(deltas) == 200 + 7  # the offline model's 7-word preamble, then the user's words
