"""ChatKit's request protocol over HTTP: every request type, every body and event validated
strictly against chatkit.types."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from chatkit.types import Page, Thread, ThreadItem
from fastapi import FastAPI
from pydantic import TypeAdapter

from tests.conftest import AppFactory, auth, client_for
from tests.fakes.models import FaultyModel, SingleModelProvider
from tests.integration.helpers import context_of, stored_conversations, stored_messages
from tests.sse import Frame, done_item, kinds, parse_sse, validate_chatkit

THREAD: TypeAdapter[Thread] = TypeAdapter(Thread)
THREAD_PAGE: TypeAdapter[Page[Thread]] = TypeAdapter(Page[Thread])
ITEM_PAGE: TypeAdapter[Page[ThreadItem]] = TypeAdapter(Page[ThreadItem])


def user_input(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": [],
        "inference_options": {},
        **extra,
    }


async def send(
    client: httpx.AsyncClient, kind: str, params: dict[str, Any], user: str = "alice"
) -> httpx.Response:
    return await client.post("/chatkit", json={"type": kind, "params": params}, headers=auth(user))


async def stream(
    client: httpx.AsyncClient, kind: str, params: dict[str, Any], user: str = "alice"
) -> list[Frame]:
    response = await send(client, kind, params, user)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = parse_sse(response.text)
    validate_chatkit(frames)
    return frames


async def new_thread(client: httpx.AsyncClient, text: str = "hello there") -> str:
    frames = await stream(client, "threads.create", {"input": user_input(text)})
    return str(frames[0].data["thread"]["id"])


async def items(client: httpx.AsyncClient, thread_id: str, **params: Any) -> Page[ThreadItem]:
    response = await send(client, "items.list", {"thread_id": thread_id, **params})
    assert response.status_code == 200, response.text
    return ITEM_PAGE.validate_json(response.text, strict=True)


async def test_threads_create_streams_a_titled_turn(client: httpx.AsyncClient) -> None:
    frames = await stream(client, "threads.create", {"input": user_input("plan my week please")})
    assert kinds(frames)[:4] == [
        "thread.created",
        "thread.item.done",
        "stream_options",  # as ChatKit's server: the widget may offer its stop button
        "thread.item.added",
    ]
    assert frames[2].data["stream_options"] == {"allow_cancel": True}
    assert frames[1].data["item"]["content"] == [
        {"type": "input_text", "text": "plan my week please"}
    ]
    assert kinds(frames)[-1] == "thread.updated"
    assert frames[-1].data["thread"]["title"] == "plan my week please"
    assert done_item(frames)["content"][0]["text"].endswith("plan my week please")


async def test_add_user_message_continues_the_thread(client: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    frames = await stream(
        client,
        "threads.add_user_message",
        {"thread_id": thread_id, "input": user_input("and again", quoted_text="hello")},
    )
    assert kinds(frames)[:2] == ["thread.item.done", "stream_options"]
    assert frames[0].data["item"]["quoted_text"] == "hello"
    assert "thread.created" not in kinds(frames)


async def test_get_by_id_and_items_list_rebuild_the_thread(client: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    await stream(
        client, "threads.add_user_message", {"thread_id": thread_id, "input": user_input("two")}
    )

    response = await send(client, "threads.get_by_id", {"thread_id": thread_id})
    thread = THREAD.validate_json(response.text, strict=True)
    assert thread.title == "hello there"
    assert [item.type for item in thread.items.data] == [
        "user_message",
        "assistant_message",
        "user_message",
        "assistant_message",
    ]
    again = THREAD.validate_json(
        (await send(client, "threads.get_by_id", {"thread_id": thread_id})).text
    )
    assert [i.id for i in again.items.data] == [i.id for i in thread.items.data]  # stable ids

    newest_first = await items(client, thread_id, order="desc", limit=3)
    assert [i.id for i in newest_first.data] == [i.id for i in reversed(thread.items.data)][:3]
    assert newest_first.has_more and newest_first.after == newest_first.data[-1].id
    rest = await items(client, thread_id, order="desc", limit=3, after=newest_first.after)
    assert [i.id for i in rest.data] == [thread.items.data[0].id]
    assert not rest.has_more


async def test_tool_calls_come_back_as_workflow_items(client: httpx.AsyncClient) -> None:
    frames = await stream(client, "threads.create", {"input": user_input("add task buy milk")})
    thread_id = frames[0].data["thread"]["id"]
    streamed = [f.data["item"] for f in frames if f.type == "thread.item.done"]
    page = await items(client, thread_id, order="asc")
    reloaded = [item.model_dump(mode="json", exclude_none=True) for item in page.data]
    assert [i["type"] for i in reloaded] == ["user_message", "workflow", "assistant_message"]
    assert [i["id"] for i in reloaded] == [i["id"] for i in streamed]
    # Regression: the workflow streamed with the first tool call's time, reloaded with the
    # reply's; a client's cached item and the reloaded one must be the same item.
    assert reloaded == streamed
    assert reloaded[1]["workflow"]["tasks"][0]["title"] == "add_task"


async def test_threads_list_pages_by_creation(client: httpx.AsyncClient) -> None:
    ids = [await new_thread(client, f"thread {n}") for n in range(5)]
    await new_thread_for_bob(client)

    first = THREAD_PAGE.validate_json((await send(client, "threads.list", {"limit": 2})).text)
    assert [t.id for t in first.data] == ids[::-1][:2]
    assert first.has_more and first.after == ids[3]
    second = THREAD_PAGE.validate_json(
        (await send(client, "threads.list", {"limit": 10, "after": first.after})).text
    )
    assert [t.id for t in second.data] == ids[::-1][2:]
    assert not second.has_more and second.after is None
    oldest = THREAD_PAGE.validate_json(
        (await send(client, "threads.list", {"order": "asc", "limit": 1})).text
    )
    assert [t.id for t in oldest.data] == ids[:1]


async def new_thread_for_bob(client: httpx.AsyncClient) -> str:
    frames = await stream(client, "threads.create", {"input": user_input("bob's")}, user="bob")
    return str(frames[0].data["thread"]["id"])


async def test_update_feedback_delete(client: httpx.AsyncClient, app: FastAPI) -> None:
    thread_id = await new_thread(client)
    renamed = await send(client, "threads.update", {"thread_id": thread_id, "title": "Renamed"})
    assert THREAD.validate_json(renamed.text, strict=True).title == "Renamed"

    assistant_id = (await items(client, thread_id, order="desc", limit=1)).data[0].id
    feedback = await send(
        client,
        "items.feedback",
        {"thread_id": thread_id, "item_ids": [assistant_id], "kind": "negative"},
    )
    assert (feedback.status_code, feedback.json()) == (200, {})
    unknown = await send(
        client,
        "items.feedback",
        {"thread_id": thread_id, "item_ids": ["msg_nope"], "kind": "positive"},
    )
    assert unknown.status_code == 404

    deleted = await send(client, "threads.delete", {"thread_id": thread_id})
    assert (deleted.status_code, deleted.json()) == (200, {})
    assert await stored_conversations(app) == []
    assert await stored_messages(app) == []
    gone = await send(client, "threads.get_by_id", {"thread_id": thread_id})
    assert gone.status_code == 404


async def test_retry_replaces_the_reply_in_one_transaction(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    thread_id = await new_thread(client, "first")
    await stream(
        client, "threads.add_user_message", {"thread_id": thread_id, "input": user_input("second")}
    )
    before = await items(client, thread_id, order="asc")
    first_user, first_reply = before.data[0], before.data[1]

    frames = await stream(
        client, "threads.retry_after_item", {"thread_id": thread_id, "item_id": first_user.id}
    )
    assert kinds(frames)[:2] == ["stream_options", "thread.item.added"]  # no new user item
    after = await items(client, thread_id, order="asc")
    assert [i.type for i in after.data] == ["user_message", "assistant_message"]
    assert after.data[0].id == first_user.id
    assert after.data[1].id not in {first_reply.id}
    assert len(await stored_messages(app, thread_id)) == 2

    not_user = await send(
        client, "threads.retry_after_item", {"thread_id": thread_id, "item_id": after.data[1].id}
    )
    assert not_user.status_code == 400


async def test_other_users_ids_behave_like_missing_ones(client: httpx.AsyncClient) -> None:
    bobs = await new_thread_for_bob(client)
    for kind, params in [
        ("threads.get_by_id", {"thread_id": bobs}),
        ("items.list", {"thread_id": bobs}),
        ("threads.update", {"thread_id": bobs, "title": "mine now"}),
        ("threads.delete", {"thread_id": bobs}),
        ("threads.list", {"after": bobs}),
        ("threads.add_user_message", {"thread_id": bobs, "input": user_input("hi")}),
        ("threads.retry_after_item", {"thread_id": bobs, "item_id": "msg_x"}),
    ]:
        foreign = await send(client, kind, params)
        missing = await send(
            client,
            kind,
            {**params, "thread_id": "thr_missing"}
            if "thread_id" in params
            else {"after": "thr_missing"},
        )
        assert foreign.status_code == missing.status_code == 404, kind
        assert foreign.json() == missing.json(), kind


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("input.transcribe", {"audio_base64": "", "mime_type": "audio/webm"}),
        ("threads.add_client_tool_output", {"thread_id": "thr_1", "result": {}}),
        ("threads.custom_action", {"thread_id": "thr_1", "action": {"type": "x", "payload": {}}}),
        # Listed in the README's table with what they get (issue 20: they were left out).
        ("threads.add_structured_input", {"thread_id": "thr_1", "item_id": "i", "input": {}}),
        (
            "threads.sync_custom_action",
            {"thread_id": "thr_1", "action": {"type": "x", "payload": {}}},
        ),
        ("no.such.type", {}),
    ],
)
async def test_unsupported_types_get_a_clear_4xx(
    client: httpx.AsyncClient, kind: str, params: dict[str, Any]
) -> None:
    response = await send(client, kind, params)
    assert response.status_code == 400
    assert kind in response.json()["detail"]


async def test_bad_params_and_unknown_attachments_are_refused(client: httpx.AsyncClient) -> None:
    bad = await send(client, "threads.get_by_id", {})
    assert bad.status_code == 422
    assert any("thread_id" in error["loc"] for error in bad.json()["detail"])
    with_attachment = await send(
        client, "threads.create", {"input": {**user_input("x"), "attachments": ["atc_1"]}}
    )
    assert with_attachment.status_code == 404
    assert with_attachment.json() == {"detail": "attachment atc_1 not found"}
    not_allowed = await send(
        client,
        "threads.create",
        {"input": user_input("x", inference_options={"model": "gpt-secret"})},
    )
    assert not_allowed.status_code == 400


async def test_the_chat_url_speaks_the_envelope_too(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        ok = await client.post(
            "/api/alice/chat",
            json={"type": "threads.create", "params": {"input": user_input("hi")}},
            headers=auth("alice"),
        )
        wrong_user = await client.post(
            "/api/bob/chat",
            json={"type": "threads.list", "params": {}},
            headers=auth("alice"),
        )
        no_token = await client.post("/chatkit", json={"type": "threads.list", "params": {}})
    validate_chatkit(parse_sse(ok.text))
    assert wrong_user.status_code == 403
    assert no_token.status_code == 401
    assert no_token.headers["www-authenticate"] == "Bearer"


async def test_a_stopped_chatkit_turn_keeps_its_partial_reply(app_factory: AppFactory) -> None:
    gate = asyncio.Event()
    model = FaultyModel(after_deltas=2, gate=gate)
    app = await app_factory(SingleModelProvider(model))
    async with client_for(app) as client:
        streaming = asyncio.create_task(
            send(client, "threads.create", {"input": user_input("stop me soon")})
        )
        await asyncio.wait_for(model.reached.wait(), timeout=10)
        (running,) = context_of(app).registry.running_turns()
        thread_id = running.spec.conversation_id
        stop = await client.post(f"/api/alice/conversations/{thread_id}/cancel", headers=auth())
        frames = parse_sse((await streaming).text)
        reloaded = await items(client, thread_id, order="asc")

    validate_chatkit(frames)
    assert stop.json()["status"] == "cancelled"
    assert kinds(frames)[-3:] == [
        "assistant_message.content_part.done",
        "thread.item.done",
        "thread.updated",
    ]
    assert "error" not in kinds(frames)
    partial = done_item(frames)
    assert [i.type for i in reloaded.data] == ["user_message", "assistant_message"]
    assert reloaded.data[1].model_dump(mode="json", exclude_none=True) == partial


@pytest.mark.parametrize("body", [b'{"type": "\xff"}', b'{"type": []}', b"[1, 2]", b"{nope"])
async def test_malformed_envelopes_are_4xx_not_500(client: httpx.AsyncClient, body: bytes) -> None:
    headers = {**auth(), "Content-Type": "application/json"}
    response = await client.post("/chatkit", content=body, headers=headers)
    assert response.status_code in (400, 422)
    assert "detail" in response.json()
