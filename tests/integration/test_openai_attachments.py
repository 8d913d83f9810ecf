"""Attachments reach the real model: a turn with an image and a PDF, against the OpenAI
Responses API and a Chat Completions server with only the HTTP layer mocked; the request
body carries the bytes as `input_image` / `input_file` (`image_url` / `file` there)."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import FastAPI

from tests.conftest import AppFactory, Database, client_for
from tests.fakes.files import PDF, PNG
from tests.integration.attachments import message_input, send, uploaded
from tests.integration.test_openai_provider import (
    COMPLETION_USAGE,
    COMPLETIONS_URL,
    DELTAS,
    LOCAL,
    RESPONSES_URL,
    Upstream,
    completion_chunks,
    event_stream,
    responses_events,
    start,
)
from tests.sse import done_item, parse_sse, validate_chatkit


def data_url(mime_type: str, data: bytes) -> str:
    return f"data:{mime_type};base64,{base64.b64encode(data).decode()}"


async def turn_with_files(app: FastAPI) -> tuple[str, str]:
    """Alice sends a message with an image and a PDF; the thread's id and the reply."""
    async with client_for(app) as client:
        image = await uploaded(client, "alice", "cat.png", PNG, "image/png")
        pdf = await uploaded(client, "alice", "menu.pdf", PDF, "application/pdf")
        message = message_input("what is this?", [image["id"], pdf["id"]])
        response = await send(client, "alice", "threads.create", input=message)
    assert response.status_code == 200, response.text
    frames = parse_sse(response.text)
    validate_chatkit(frames)
    return frames[0].data["thread"]["id"], done_item(frames)["content"][0]["text"]


def last_user(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [m for m in messages if m.get("role") == "user"][-1]["content"]
    return content


async def test_responses_get_the_image_and_the_pdf_as_input_parts(
    app_factory: AppFactory, database: Database
) -> None:
    upstream = Upstream(RESPONSES_URL, lambda _: event_stream(responses_events(DELTAS)))
    app = await start(app_factory, database, upstream, openai_api_key="sk-test")

    _, reply = await turn_with_files(app)

    assert reply == "".join(DELTAS)
    (body,) = upstream.bodies()
    assert last_user(body["input"]) == [
        {"type": "input_text", "text": "what is this?"},
        {"type": "input_text", "text": "Attached image: cat.png"},
        {"type": "input_image", "image_url": data_url("image/png", PNG), "detail": "auto"},
        {"type": "input_text", "text": "Attached file: menu.pdf"},
        {
            "type": "input_file",
            "file_data": data_url("application/pdf", PDF),
            "filename": "menu.pdf",
        },
    ]
    assert "/chatkit/attachments/" not in str(body)  # no link the provider could not reach


async def test_chat_completions_get_them_as_image_url_and_file_parts(
    app_factory: AppFactory, database: Database
) -> None:
    upstream = Upstream(
        COMPLETIONS_URL, lambda _: event_stream(completion_chunks(DELTAS, COMPLETION_USAGE))
    )
    app = await start(app_factory, database, upstream, **LOCAL)

    await turn_with_files(app)

    (body,) = upstream.bodies()
    parts = last_user(body["messages"])
    assert [part["type"] for part in parts] == ["text", "text", "image_url", "text", "file"]
    assert parts[2]["image_url"]["url"] == data_url("image/png", PNG)
    assert parts[4]["file"] == {
        "file_data": data_url("application/pdf", PDF),
        "filename": "menu.pdf",
    }


async def test_a_retry_sends_the_attachments_again(
    app_factory: AppFactory, database: Database
) -> None:
    upstream = Upstream(RESPONSES_URL, lambda _: event_stream(responses_events(DELTAS)))
    app = await start(app_factory, database, upstream, openai_api_key="sk-test")
    thread_id, _ = await turn_with_files(app)
    async with client_for(app) as client:
        items = (await send(client, "alice", "items.list", thread_id=thread_id, order="asc")).json()
        user_item = items["data"][0]["id"]
        retried = await send(
            client, "alice", "threads.retry_after_item", thread_id=thread_id, item_id=user_item
        )
    assert retried.status_code == 200, retried.text
    first, second = upstream.bodies()
    assert last_user(second["input"]) == last_user(first["input"])
