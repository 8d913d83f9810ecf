"""Regression: a lone UTF-16 surrogate in a request body (`"\\ud800"`) was a 500.

JSON may escape half of a surrogate pair; Python decodes it to a `str` that UTF-8 cannot
encode. FastAPI's 422 echoed it back (the answer failed to encode: 500), and where pydantic let
it through (metadata keys and values), the turn ran, was committed, and the reply failed to
encode. Every body that takes text now answers 422 with a FastAPI-style `detail`, before
anything is stored or the model runs; a whole pair (`"\\ud83d\\ude00"`, an emoji) still works.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlmodel import SQLModel

from chatrelay.schemas.text import LONE_SURROGATE
from chatrelay.store import transaction
from tests.conftest import AppFactory, auth, client_for
from tests.fakes.models import FaultyModel, SingleModelProvider
from tests.integration.helpers import SSE, context_of, stored_conversations, stored_messages
from tests.integration.test_chatkit_protocol import items, new_thread, send, user_input
from tests.sse import parse_sse

EMOJI = "\U0001f600"  # JSON escapes it as the pair "\ud83d\ude00"


def escaped_json(body: Any) -> bytes:
    """`body` as a client sends it: `json.dumps` escapes a lone surrogate as `\\ud800`."""
    return json.dumps(body).encode("ascii")


async def post(
    client: httpx.AsyncClient, url: str, content: bytes, method: str = "POST", **headers: str
) -> httpx.Response:
    """`content` sent as JSON with alice's token."""
    assert b"\\ud" in content or b"\xed" in content, content[:80]  # the raw body holds it
    headers = {**auth(), "Content-Type": "application/json", **headers}
    return await client.request(method, url, content=content, headers=headers)


async def row_counts(app: FastAPI) -> dict[str, int]:
    """Rows in every table: what a refused request must leave as it was."""
    async with transaction(context_of(app).sessions) as db:
        return {
            table.name: (await db.exec(sa.select(sa.func.count()).select_from(table))).one()[0]
            for table in SQLModel.metadata.sorted_tables
        }


def assert_refused(response: httpx.Response, loc: tuple[str | int, ...]) -> None:
    """A 422 in FastAPI's shape, naming where the lone surrogate was."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "detail": [
            {"type": "string_unicode", "loc": list(loc), "msg": LONE_SURROGATE, "input": None}
        ]
    }


async def recording_app(app_factory: AppFactory) -> tuple[FastAPI, FaultyModel]:
    model = FaultyModel()  # the offline model, recording each call
    return await app_factory(SingleModelProvider(model)), model


# -- POST /api/{user_id}/chat ----------------------------------------------------------------

CHAT = ("body", "chat")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"message": "a\ud800b"}, (*CHAT, "message")),
        ({"message": "\udfff"}, (*CHAT, "message")),  # a low half alone
        ({"message": "x", "conversation_id": "thr_\ud800"}, (*CHAT, "conversation_id")),
        ({"message": "x", "request_id": "r-\ud800"}, (*CHAT, "request_id")),
        (
            {"message": "x", "metadata": {"page": {"tags": ["ok", "\ud800"]}}},
            (*CHAT, "metadata", "page", "tags", 1),
        ),
        (
            {"message": "x", "metadata": {"page": {"\ud800": 1}}},
            (*CHAT, "metadata", "page", "\\ud800"),
        ),
        ({"message": "x", "metadata": "\ud800"}, (*CHAT, "metadata")),  # and not an object
        ({"message": "x", "\ud800": 1}, (*CHAT, "\\ud800")),  # an unknown field's name
        ({"message": "x", "extra": "\ud800"}, (*CHAT, "extra")),  # an unknown field's value
        ({"message": "x" * 10_001 + "\ud800"}, (*CHAT, "message")),  # and too long
    ],
    ids=[
        "message",
        "low-half",
        "conversation_id",
        "request_id",
        "metadata-value",
        "metadata-key",
        "metadata-not-object",
        "unknown-field-name",
        "unknown-field-value",
        "message-too-long",
    ],
)
async def test_chat_refuses_a_lone_surrogate_in_any_field(
    app_factory: AppFactory, body: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    app, model = await recording_app(app_factory)
    before = await row_counts(app)
    async with client_for(app) as client:
        response = await post(client, "/api/alice/chat", escaped_json(body))

    assert_refused(response, loc)
    assert await row_counts(app) == before
    assert model.calls == []


async def test_chat_refuses_it_before_a_stream_or_a_raw_utf8_surrogate(
    app_factory: AppFactory,
) -> None:
    app, model = await recording_app(app_factory)
    async with client_for(app) as client:
        streamed = await post(client, "/api/alice/chat", b'{"message":"a\\ud800b"}', **SSE)
        # A surrogate's UTF-8-like bytes: `json.loads(bytes)` decoded them with
        # "surrogatepass", but they are not UTF-8, so the body is JSON that does not parse.
        raw = await post(client, "/api/alice/chat", b'{"message":"a\xed\xa0\x80b"}')

    assert_refused(streamed, (*CHAT, "message"))
    assert raw.status_code == 422
    [error] = raw.json()["detail"]
    assert (error["type"], error["loc"]) == ("json_invalid", ["body", 13])
    assert await stored_conversations(app) == []
    assert model.calls == []


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"type": "threads.list", "params": "\ud800"}, ("body", "chatkit", "params")),
        ({"type": "threads.list", "metadata": ["\ud800"]}, ("body", "chatkit", "metadata")),
    ],
)
async def test_a_422_never_echoes_a_lone_surrogate(
    app_factory: AppFactory, body: dict[str, Any], loc: tuple[str, ...]
) -> None:
    """A ChatKit envelope on the chat URL is checked after FastAPI's own validation, whose
    errors echo their input: that 422 answers `input: null` instead of failing to encode."""
    app = await app_factory()
    async with client_for(app) as client:
        response = await post(client, "/api/alice/chat", escaped_json(body))

    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["type"] == "dict_type"
    assert (tuple(error["loc"]), error["input"]) == (loc, None)


async def test_chat_keeps_a_surrogate_pair(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        body = escaped_json({"message": f"a{EMOJI}b", "metadata": {EMOJI: [EMOJI]}})
        assert b"\\ud83d\\ude00" in body
        response = await post(client, "/api/alice/chat", body)

    assert response.status_code == 200, response.text
    assert response.json()["message"].endswith(f"You said: a{EMOJI}b")
    assert response.json()["metadata"] == {EMOJI: [EMOJI]}
    user, _assistant = await stored_messages(app, response.json()["conversation_id"])
    assert user.content == f"a{EMOJI}b"


# -- PATCH /api/{user_id}/conversations/{conversation_id} ------------------------------------


async def test_rename_refuses_a_lone_surrogate_and_keeps_a_pair(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        turn = await client.post("/api/alice/chat", json={"message": "hi"}, headers=auth())
        url = f"/api/alice/conversations/{turn.json()['conversation_id']}"
        refused = await post(client, url, b'{"title":"a\\ud800b"}', method="PATCH")
        (unchanged,) = await stored_conversations(app)
        renamed = await post(client, url, escaped_json({"title": EMOJI}), method="PATCH")

    assert_refused(refused, ("body", "title"))
    assert unchanged.title == "hi"
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["title"] == EMOJI
    (conversation,) = await stored_conversations(app)
    assert conversation.title == EMOJI


# -- ChatKit: POST /chatkit, and an envelope on the chat URL ---------------------------------

THREAD, ITEM = "{thread}", "{item}"  # stand-ins for a real thread and its user message
BAD = "a\ud800b"
PARAMS = ("body", "params")
CHATKIT_URLS = ("/chatkit", "/api/alice/chat")


def bad_input(**fields: Any) -> dict[str, Any]:
    return {**user_input("hello"), **fields}


def case(kind: str, params: dict[str, Any], *where: str | int) -> Any:
    """A request of `kind` whose lone surrogate is at `params.<where>`."""
    return pytest.param(kind, params, (*PARAMS, *where), id=f"{kind}:{'.'.join(map(str, where))}")


@pytest.mark.parametrize(
    ("kind", "params", "loc"),
    [
        case("threads.create", {"input": user_input(BAD)}, "input", "content", 0, "text"),
        case("threads.create", {"input": bad_input(quoted_text=BAD)}, "input", "quoted_text"),
        case(
            "threads.create",
            {"input": bad_input(inference_options={"model": BAD})},
            *("input", "inference_options", "model"),
        ),
        case(
            "threads.add_user_message",
            {"thread_id": THREAD, "input": user_input(BAD)},
            *("input", "content", 0, "text"),
        ),
        case("threads.add_user_message", {"thread_id": BAD, "input": user_input("x")}, "thread_id"),
        case("threads.retry_after_item", {"thread_id": THREAD, "item_id": BAD}, "item_id"),
        case("threads.update", {"thread_id": THREAD, "title": BAD}, "title"),
        case(
            "items.feedback",
            {"thread_id": THREAD, "item_ids": [ITEM, BAD], "kind": "positive"},
            *("item_ids", 1),
        ),
        case("items.list", {"thread_id": THREAD, "after": BAD}, "after"),
        case("threads.list", {"after": BAD}, "after"),
        case("threads.get_by_id", {"thread_id": BAD}, "thread_id"),
        case("threads.delete", {"thread_id": BAD}, "thread_id"),
    ],
)
@pytest.mark.parametrize("url", CHATKIT_URLS)
async def test_chatkit_refuses_a_lone_surrogate_in_every_request_type(
    app_factory: AppFactory,
    url: str,
    kind: str,
    params: dict[str, Any],
    loc: tuple[str | int, ...],
) -> None:
    app, model = await recording_app(app_factory)
    async with client_for(app) as client:
        thread_id = await new_thread(client)
        item_id = (await items(client, thread_id)).data[0].id
        before, calls = await row_counts(app), len(model.calls)
        real = json.dumps(params).replace(THREAD, thread_id).replace(ITEM, item_id)
        response = await post(client, url, escaped_json({"type": kind, "params": json.loads(real)}))
        thread = (await send(client, "threads.get_by_id", {"thread_id": thread_id})).json()

    assert_refused(response, loc)
    assert await row_counts(app) == before
    assert len(model.calls) == calls
    assert thread["title"] == "hello there"


async def test_chatkit_refuses_a_lone_surrogate_in_the_envelope_metadata(
    app_factory: AppFactory,
) -> None:
    app = await app_factory()
    body = {"type": "threads.list", "params": {}, "metadata": {"trace": [BAD]}}
    async with client_for(app) as client:
        responses = [await post(client, url, escaped_json(body)) for url in CHATKIT_URLS]
    for response in responses:
        assert_refused(response, ("body", "metadata", "trace", 0))


async def test_chatkit_keeps_a_surrogate_pair(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as client:
        body = escaped_json({"type": "threads.create", "params": {"input": user_input(EMOJI)}})
        created = await post(client, "/chatkit", body)
        thread_id = parse_sse(created.text)[0].data["thread"]["id"]
        renamed = await post(
            client,
            "/chatkit",
            escaped_json(
                {"type": "threads.update", "params": {"thread_id": thread_id, "title": f"{EMOJI}!"}}
            ),
        )

    assert created.status_code == 200 and renamed.status_code == 200, renamed.text
    assert renamed.json()["title"] == f"{EMOJI}!"
    user, _assistant = await stored_messages(app, thread_id)
    assert user.content == EMOJI
    (conversation,) = await stored_conversations(app)
    assert conversation.title == f"{EMOJI}!"


# -- the routes without a body: cancel, resume, the history reads and delete -----------------


async def test_urls_and_headers_cannot_carry_a_lone_surrogate(app_factory: AppFactory) -> None:
    """A path or query is percent-decoded as UTF-8 with replacement, a header as Latin-1: a
    surrogate's bytes (ED A0 80) arrive as other characters, a 4xx like any unknown id."""
    app = await app_factory()
    async with client_for(app) as client:
        turn = await client.post("/api/alice/chat", json={"message": "hi"}, headers=auth())
        conversations = "/api/alice/conversations"
        real = f"{conversations}/{turn.json()['conversation_id']}"
        before = await row_counts(app)
        answers = {
            "cancel": await client.post(f"{conversations}/%ED%A0%80/cancel", headers=auth()),
            "resume": await client.get(f"{conversations}/%ED%A0%80/stream", headers=auth()),
            "resume-query": await client.get(
                f"{real}/stream?last_event_id=%ED%A0%80", headers=auth()
            ),
            "resume-header": await client.get(
                f"{real}/stream", headers={**auth(), "Last-Event-ID": b"\xed\xa0\x80"}
            ),
            "list": await client.get(f"{conversations}?after=%ED%A0%80", headers=auth()),
            "messages": await client.get(f"{real}/messages?after=%ED%A0%80", headers=auth()),
            "delete": await client.delete(f"{conversations}/%ED%A0%80", headers=auth()),
            "user": await client.post("/api/%ED%A0%80/chat", json={"message": "x"}, headers=auth()),
        }

    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {
        "cancel": 404,
        "resume": 404,
        "resume-query": 400,
        "resume-header": 400,
        "list": 400,
        "messages": 400,
        "delete": 404,
        "user": 403,
    }
    assert all("detail" in response.json() for response in answers.values())
    assert await row_counts(app) == before
