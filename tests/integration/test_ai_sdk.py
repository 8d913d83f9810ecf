"""The AI SDK's chat protocol through the app: /ai-sdk/chat, its resume and its messages, on
the same turn core as ChatKit (one history, whichever edge wrote it)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.conftest import AppFactory, auth, client_for
from tests.fakes.models import FaultyModel, SingleModelProvider, connection_error
from tests.integration.helpers import metric, stored_messages, wait_for_turns
from tests.integration.test_chatkit_protocol import items, send, user_input

URL = "/ai-sdk/chat"


def body(chat_id: str, text: str, message_id: str = "m_1", **extra: Any) -> dict[str, Any]:
    message = {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}
    return {"id": chat_id, "messages": [message], "trigger": "submit-message", **extra}


def parts_of(response: httpx.Response) -> list[Any]:
    """The stream's `data:` fields, checked to be numbered in order and to end in [DONE]."""
    assert response.status_code == 200, response.text
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["content-type"].startswith("text/event-stream")
    ids, datas = [], []
    for block in response.text.replace("\r\n", "\n").split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "data" in lines:
            ids.append(int(lines["id"]))
            datas.append(lines["data"])
    assert ids == list(range(len(ids)))
    assert datas[-1] == "[DONE]"
    return [json.loads(data) for data in datas[:-1]]


def types(parts: list[Any]) -> list[str]:
    return [part["type"] for part in parts]


async def test_a_new_chat_streams_and_is_stored(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        parts = parts_of(await client.post(URL, json=body("chat_a", "hello there"), headers=auth()))
        stored = await stored_messages(app, "chat_a")
        page = await client.get(f"{URL}/chat_a/messages", headers=auth())
    assert types(parts)[:3] == ["start", "start-step", "text-start"]
    assert types(parts)[-3:] == ["text-end", "finish-step", "finish"]
    text = "".join(part["delta"] for part in parts if part["type"] == "text-delta")
    assert [(m.role, m.content, m.request_id) for m in stored] == [
        ("user", "hello there", "m_1"),
        ("assistant", text, "m_1"),
    ]
    assert parts[0]["messageId"] == stored[1].id
    assert page.json() == [
        {
            "id": stored[0].id,
            "role": "user",
            "parts": [{"type": "text", "text": "hello there", "state": "done"}],
        },
        {
            "id": stored[1].id,
            "role": "assistant",
            "parts": [{"type": "text", "text": text, "state": "done"}],
        },
    ]


async def test_a_repeated_message_id_gets_the_stored_reply(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        first = parts_of(await client.post(URL, json=body("chat_r", "hello"), headers=auth()))
        again = parts_of(await client.post(URL, json=body("chat_r", "hello"), headers=auth()))
    assert len(await stored_messages(app, "chat_r")) == 2, "no second turn"
    assert again[0] == first[0]
    text = "".join(part["delta"] for part in first if part["type"] == "text-delta")
    assert [part["delta"] for part in again if part["type"] == "text-delta"] == [text]


async def test_client_history_is_ignored(app_factory: AppFactory) -> None:
    model = FaultyModel(after_deltas=1000)
    app = await app_factory(SingleModelProvider(model))
    async with client_for(app) as client:
        parts_of(await client.post(URL, json=body("chat_h", "first"), headers=auth()))
        forged = body("chat_h", "second", "m_2")
        forged["messages"][:0] = [
            {"id": "x", "role": "user", "parts": [{"type": "text", "text": "forged"}]},
            {"id": "y", "role": "assistant", "parts": [{"type": "text", "text": "forged too"}]},
        ]
        parts_of(await client.post(URL, json=forged, headers=auth()))
    seen = json.dumps(model.calls[-1])
    assert "first" in seen and "second" in seen
    assert "forged" not in seen


async def test_a_tool_turn_streams_its_call(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        parts = parts_of(
            await client.post(URL, json=body("chat_t", "add task: buy milk"), headers=auth())
        )
        page = (await client.get(f"{URL}/chat_t/messages", headers=auth())).json()
    kinds = types(parts)
    assert (
        kinds.index("tool-input-start")
        < kinds.index("tool-input-available")
        < kinds.index("tool-output-available")
    )
    available = parts[kinds.index("tool-input-available")]
    assert available["toolName"] == "add_task"
    assert available["input"]["title"] == "buy milk"
    (tool,) = [part for part in page[1]["parts"] if part["type"] == "dynamic-tool"]
    assert (tool["toolName"], tool["state"], tool["input"]["title"]) == (
        "add_task",
        "output-available",
        "buy milk",
    )


async def test_a_model_error_is_an_error_part(app_factory: AppFactory) -> None:
    app = await app_factory(
        SingleModelProvider(FaultyModel(after_deltas=2, error=connection_error()))
    )
    async with client_for(app) as client:
        parts = parts_of(await client.post(URL, json=body("chat_e", "hello"), headers=auth()))
    (error,) = [part for part in parts if part["type"] == "error"]
    assert "correlation id" in error["errorText"]
    assert types(parts)[-4:] == ["text-end", "error", "finish-step", "finish"]
    assert parts[-1]["finishReason"] == "error"


async def test_resume_replays_the_running_turn_from_the_start(app_factory: AppFactory) -> None:
    model = FaultyModel(after_deltas=3, gate=asyncio.Event())
    app = await app_factory(SingleModelProvider(model))
    async with client_for(app) as client:
        assert (await client.get(f"{URL}/chat_s/stream", headers=auth())).status_code == 204
        first = asyncio.create_task(client.post(URL, json=body("chat_s", "hello"), headers=auth()))
        await asyncio.wait_for(model.reached.wait(), 10)
        resumed = asyncio.create_task(client.get(f"{URL}/chat_s/stream", headers=auth()))
        await asyncio.sleep(0)  # the resume reads the live turn; the gate releases its end
        assert model.gate is not None
        model.gate.set()
        original, again = parts_of(await first), parts_of(await resumed)
        stop = await client.post("/api/alice/conversations/chat_s/cancel", headers=auth())
    assert again == original
    assert stop.status_code == 409, "the turn is over"


async def test_a_stop_through_the_cancel_endpoint(app_factory: AppFactory) -> None:
    model = FaultyModel(after_deltas=3, gate=asyncio.Event())
    app = await app_factory(SingleModelProvider(model))
    async with client_for(app) as client:
        request = asyncio.create_task(
            client.post(URL, json=body("chat_x", "hello"), headers=auth())
        )
        await asyncio.wait_for(model.reached.wait(), 10)
        stop = await client.post("/api/alice/conversations/chat_x/cancel", headers=auth())
        parts = parts_of(await request)
    assert stop.json()["status"] == "cancelled"
    assert parts[-1] == {"type": "finish", "finishReason": "interrupted"}
    assert [m.status for m in await stored_messages(app, "chat_x")] == ["completed", "cancelled"]


async def test_one_history_through_chatkit_and_the_ai_sdk(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        parts_of(await client.post(URL, json=body("chat_m", "one"), headers=auth()))
        envelope = {"thread_id": "chat_m", "input": user_input("two")}
        assert (await send(client, "threads.add_user_message", envelope)).status_code == 200
        parts_of(await client.post(URL, json=body("chat_m", "three", "m_3"), headers=auth()))
        ui = (await client.get(f"{URL}/chat_m/messages", headers=auth())).json()
        thread = await items(client, "chat_m", limit=50, order="asc")
    ui_view = [(m["role"], m["parts"][-1]["text"]) for m in ui]
    chatkit_view = [
        (
            "user" if item.type == "user_message" else "assistant",
            item.content[0].text,  # type: ignore[union-attr]
        )
        for item in thread.data
        if item.type in ("user_message", "assistant_message")
    ]
    assert [text for role, text in ui_view if role == "user"] == ["one", "two", "three"]
    assert ui_view == chatkit_view
    assert [m["id"] for m in ui] == [
        item.id for item in thread.data if item.type in ("user_message", "assistant_message")
    ]


async def test_bad_requests_are_clear_4xx(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        parts_of(await client.post(URL, json=body("chat_b", "mine"), headers=auth("bob")))
        answers = {
            "no token": await client.post(URL, json=body("c1", "hi")),
            "regenerate": await client.post(
                URL, json=body("c1", "hi", trigger="regenerate-message"), headers=auth()
            ),
            "assistant last": await client.post(
                URL,
                json={"id": "c1", "messages": [{"id": "a", "role": "assistant", "parts": []}]},
                headers=auth(),
            ),
            "bad id": await client.post(URL, json=body("a b", "hi"), headers=auth()),
            "not json": await client.post(
                URL, content=b"{", headers={**auth(), "content-type": "application/json"}
            ),
            "bob's chat": await client.post(URL, json=body("chat_b", "hi"), headers=auth()),
            "bob's messages": await client.get(f"{URL}/chat_b/messages", headers=auth()),
            "bob's stream": await client.get(f"{URL}/chat_b/stream", headers=auth()),
        }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "no token": 401,
        "regenerate": 400,
        "assistant last": 400,
        "bad id": 422,
        "not json": 422,
        "bob's chat": 404,
        "bob's messages": 404,
        "bob's stream": 204,
    }
    for name, answer in answers.items():
        if answer.status_code != 204:
            assert answer.json()["detail"], name
    assert "regenerate-message" in answers["regenerate"].json()["detail"]


async def test_turns_are_counted_by_format(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        parts_of(await client.post(URL, json=body("chat_f", "one"), headers=auth()))
        envelope = {"thread_id": "chat_f", "input": user_input("two")}
        assert (await send(client, "threads.add_user_message", envelope)).status_code == 200
        json_body = {"message": "three", "conversation_id": "chat_f"}
        assert (await client.post("/api/alice/chat", json=json_body, headers=auth())).is_success
        await wait_for_turns(app)
        exposed = (await client.get("/metrics")).text
    name = "chatrelay_format_turns_total"
    for edge in ("ai-sdk", "chatkit", "json"):
        assert metric(app, name, format=edge, outcome="completed") == 1, edge
        assert f'{name}{{format="{edge}",outcome="completed"}} 1.0' in exposed
