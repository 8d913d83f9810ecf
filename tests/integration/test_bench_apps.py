"""The bench's own servers, in process: ChatKitServer (`bench/chatkit_app.py`, on its SQLite
store) streams valid ChatKit replies and keeps history; the floor (`bench/floor_app.py`)
answers as many events as it was told; both check the bearer token the same way."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from bench.chatkit_app import create_app
from bench.chatkit_store import SQLiteStore
from bench.stream_throughput import chatkit_input, request_body
from bench.targets import CHATKIT
from chatkit.store import NotFoundError
from chatkit.types import InferenceOptions, ThreadMetadata, UserMessageItem, UserMessageTextContent
from fastapi import FastAPI

from tests.conftest import client_for, running
from tests.fakes.chatkit_store import RequestContext
from tests.fakes.models import FaultyModel
from tests.sse import done_item, kinds, parse_sse, validate_chatkit

SECRET = "bench-test-secret-" + "x" * 46
FLOOR_EVENTS = 5
FLOOR_APP = Path(__file__).resolve().parents[2] / "bench" / "floor_app.py"
PREAMBLE = "This is chatrelay's offline model. You said:"
SSE = {"Accept": "text/event-stream"}


def bearer(user: str, secret: str = SECRET) -> dict[str, str]:
    token = jwt.encode({"sub": user, "exp": int(time.time()) + 60}, secret, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def add_message(thread_id: str, text: str) -> dict[str, Any]:
    params = {"thread_id": thread_id, "input": chatkit_input(text)}
    return {"type": "threads.add_user_message", "params": params}


def reply_kinds(words: int) -> list[str]:
    """ChatKitServer's events for an offline reply of `words` words to a new thread's
    first message: `stream_options` after the user's item, and no title update."""
    return [
        "thread.created",
        "thread.item.done",
        "stream_options",
        "thread.item.added",
        "assistant_message.content_part.added",
        *["assistant_message.content_part.text_delta"] * words,
        "assistant_message.content_part.done",
        "thread.item.done",
    ]


def texts(model_input: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) of each message the agent was given."""
    result = []
    for item in model_input:
        content = item.get("content")
        parts = content if isinstance(content, list) else [{"text": content}]
        result.append((item.get("role", ""), "".join(str(p.get("text", "")) for p in parts)))
    return result


@pytest.fixture
async def chatkit_app(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, FaultyModel]]:
    model = FaultyModel()  # no fault injected: the offline model, recording its inputs
    async with running(create_app(SECRET, tmp_path / "chatkit.db", model)) as app:
        yield app, model


@pytest.fixture
def floor_app(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    """A fresh copy of the floor module: it reads its settings from the environment at import."""
    monkeypatch.setenv("AUTH_SECRET", SECRET)
    monkeypatch.setenv("FLOOR_EVENTS", str(FLOOR_EVENTS))
    monkeypatch.delenv("FLOOR_DELAY_SECONDS", raising=False)
    spec = importlib.util.spec_from_file_location("bench_floor_app_under_test", FLOOR_APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # pydantic resolves its models there
    spec.loader.exec_module(module)
    app: FastAPI = module.app
    return app


async def post(app: FastAPI, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    async with client_for(app) as client:
        return await client.post("/api/alice/chat", json=body, headers=headers)


async def test_chatkit_app_streams_a_valid_reply(chatkit_app: tuple[FastAPI, FaultyModel]) -> None:
    app, _ = chatkit_app
    response = await post(app, request_body(CHATKIT, "hello there"), {**bearer("alice"), **SSE})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = parse_sse(response.text)
    validate_chatkit(frames)
    assert kinds(frames) == reply_kinds(len(PREAMBLE.split()) + 2)
    assert done_item(frames)["content"][0]["text"] == f"{PREAMBLE} hello there"


async def test_chatkit_app_second_turn_sees_the_history(
    chatkit_app: tuple[FastAPI, FaultyModel],
) -> None:
    app, model = chatkit_app
    headers = {**bearer("alice"), **SSE}
    first = parse_sse((await post(app, request_body(CHATKIT, "hello there"), headers)).text)
    thread_id = first[0].data["thread"]["id"]
    second = parse_sse((await post(app, add_message(thread_id, "and again"), headers)).text)
    validate_chatkit(second)
    assert kinds(second)[-1] == "thread.item.done"
    assert done_item(second)["content"][0]["text"] == f"{PREAMBLE} and again"
    assert texts(model.calls[-1]) == [
        ("user", "hello there"),
        ("assistant", f"{PREAMBLE} hello there"),
        ("user", "and again"),
    ]
    stored = await post(
        app, {"type": "threads.get_by_id", "params": {"thread_id": thread_id}}, bearer("alice")
    )
    assert stored.status_code == 200
    items = stored.json()["items"]["data"]
    assert [item["type"] for item in items] == ["user_message", "assistant_message"] * 2


def message(thread_id: str, index: int, at: datetime) -> UserMessageItem:
    return UserMessageItem(
        id=f"msg_{index}",
        thread_id=thread_id,
        created_at=at,
        content=[UserMessageTextContent(text=f"m{index}")],
        inference_options=InferenceOptions(),
    )


async def test_chatkit_store_pages_and_scopes_by_user(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    await store.open()
    try:
        alice, bob = RequestContext("alice"), RequestContext("bob")
        now = datetime(2026, 11, 27, 12, 0)  # naive, as ChatKit stamps its items
        await store.save_thread(ThreadMetadata(id="thr_1", created_at=now), alice)
        for index in range(5):  # msg_3 and msg_4 share a timestamp: insertion order breaks ties
            at = now + timedelta(seconds=min(index, 3))
            await store.add_thread_item("thr_1", message("thr_1", index, at), alice)
        page = await store.load_thread_items("thr_1", None, 2, "desc", alice)
        assert [item.id for item in page.data] == ["msg_4", "msg_3"]
        assert page.has_more and page.after == "msg_3"
        rest = await store.load_thread_items("thr_1", page.after, 10, "desc", alice)
        assert [item.id for item in rest.data] == ["msg_2", "msg_1", "msg_0"]
        assert not rest.has_more and rest.after is None
        ascending = await store.load_thread_items("thr_1", "msg_1", 10, "asc", alice)
        assert [item.id for item in ascending.data] == ["msg_2", "msg_3", "msg_4"]
        assert (await store.load_item("thr_1", "msg_2", alice)) == message(
            "thr_1", 2, now + timedelta(seconds=2)
        )

        with pytest.raises(NotFoundError):
            await store.load_thread("thr_1", bob)
        assert (await store.load_thread_items("thr_1", None, 10, "asc", bob)).data == []
        await store.save_thread(ThreadMetadata(id="thr_1", created_at=now, title="bob's"), bob)
        assert (await store.load_thread("thr_1", alice)).title is None
        await store.delete_thread("thr_1", bob)
        assert len((await store.load_thread_items("thr_1", None, 10, "asc", alice)).data) == 5
    finally:
        await store.close()


BAD_TOKENS: dict[str, tuple[Callable[[], dict[str, str]], int]] = {
    "missing": (dict, 401),
    "not bearer": (lambda: {"Authorization": "Basic YWxpY2U6eA=="}, 401),
    "another secret": (lambda: bearer("alice", "another-secret-" + "y" * 49), 401),
    "another user": (lambda: bearer("bob"), 403),
}


@pytest.mark.parametrize("case", BAD_TOKENS)
async def test_chatkit_app_checks_the_token(
    chatkit_app: tuple[FastAPI, FaultyModel], case: str
) -> None:
    headers, status = BAD_TOKENS[case]
    response = await post(chatkit_app[0], request_body(CHATKIT, "hello"), {**headers(), **SSE})
    assert response.status_code == status


@pytest.mark.parametrize("case", BAD_TOKENS)
async def test_floor_checks_the_token(floor_app: FastAPI, case: str) -> None:
    headers, status = BAD_TOKENS[case]
    response = await post(floor_app, {"message": "hello"}, {**headers(), **SSE})
    assert response.status_code == status


async def test_floor_json_reply(floor_app: FastAPI) -> None:
    response = await post(floor_app, {"message": "hello"}, bearer("alice"))
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == " ".join(f"w{i}" for i in range(FLOOR_EVENTS))
    assert body["usage"]["output_tokens"] == FLOOR_EVENTS


async def test_floor_streams_its_event_count(floor_app: FastAPI) -> None:
    response = await post(floor_app, {"message": "hello"}, {**bearer("alice"), **SSE})
    assert response.status_code == 200
    frames = parse_sse(response.text)
    validate_chatkit(frames)
    assert [frame.id for frame in frames] == [str(i) for i in range(FLOOR_EVENTS)]
    assert kinds(frames) == ["assistant_message.content_part.text_delta"] * FLOOR_EVENTS
