"""Golden comparison: chatrelay's `/chatkit` against chatkit-python's own `ChatKitServer`.

The reference (`tests/fakes/chatkit_reference.py`) is a `ChatKitServer` built as the ChatKit
docs build one: `respond()` runs an Agents SDK agent with `Runner.run_streamed` and converts
the run with `stream_agent_response`, on an in-memory store. Both servers run chatrelay's
deterministic `OfflineModel`, so every reply's text is the same on both.

The same request sequence goes to both; the transcripts are normalised and compared
(`tests/golden.py`). What differs must be exactly the documented list, each entry with its
reason: a new difference fails the test, and so does a listed one that no longer occurs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from agents import FunctionTool
from chatkit.store import NotFoundError

from tests.conftest import AppFactory, auth, client_for
from tests.fakes.chatkit_reference import (
    ReferenceServer,
    reference_agent,
    reference_app,
    reference_todo_tools,
)
from tests.fakes.chatkit_store import InMemoryStore
from tests.fakes.files import PNG
from tests.golden import ABSENT, Difference, Step, Transcript, assert_differences, differences

D = Difference
Sequence = Callable[[httpx.AsyncClient], Awaitable[list[Step]]]
TITLE_REASON = (
    "chatrelay titles a new thread from its first message; ChatKitServer leaves that to respond()"
)

KNOWN_DIFFERENCES: dict[Difference, str] = {
    D("threads.create", "events", (), ("thread.updated",)): TITLE_REASON,
    D("threads.get_by_id", "body.title", ABSENT, "hello there"): TITLE_REASON,
    D("threads.list", "body.data[0].title", ABSENT, "hello there"): TITLE_REASON,
    D("threads.get_by_id (deleted)", "status", 500, 404): (
        "the store's NotFoundError escapes ChatKitServer.process(): the docs' bare app answers 500"
    ),
    D("threads.get_by_id (deleted)", "media_type", "text/plain", "application/json"): (
        "Starlette's plain-text 500 page against chatrelay's JSON error body"
    ),
    D(
        "threads.get_by_id (deleted)",
        "body",
        "Internal Server Error",
        '{"detail": "thread not found"}',
    ): "Starlette's plain-text 500 page against chatrelay's JSON error body",
}

WORKFLOW_EVENTS = (
    "progress_update",
    "thread.item.added:workflow",
    "thread.item.updated:workflow.task.updated",
    "thread.item.done:workflow",
)
KNOWN_TOOL_DIFFERENCES: dict[Difference, str] = {
    D("threads.create", "events", (), WORKFLOW_EVENTS): (
        "chatrelay shows each tool call live as a workflow item; stream_agent_response shows "
        "nothing for function tools unless the app streams a workflow itself"
    ),
    D("threads.create", "events", (), ("thread.updated",)): TITLE_REASON,
    D("items.list", "body.data", (), ("workflow",)): (
        "chatrelay keeps the tool calls and rebuilds the workflow item on reload"
    ),
}

CHATKIT_LINK = "http://test/files/<image:1>"
PREVIEW_LINK = (
    "http://test/chatkit/attachments/<image:1>/preview?expires=<expires>&signature=<signature>"
)
PREVIEW_REASON = (
    "chatrelay's preview link is its own route, signed and expiring (fresh on every reload); "
    "the reference app's is whatever its AttachmentStore makes up"
)
STALE_UPLOAD_REASON = (
    "ChatKitServer keeps the upload descriptor on the sent message unless the app clears it; "
    "chatrelay drops it once the bytes are stored (an upload link works once anyway)"
)
USER_ITEM = "events[thread.item.done:user_message].item.attachments[image]"
LISTED = "body.data[user_message].attachments[image]"
KNOWN_ATTACHMENT_DIFFERENCES: dict[Difference, str] = {
    D(
        "attachments.create",
        "body.upload_descriptor.url",
        CHATKIT_LINK,
        PREVIEW_LINK.replace("/preview", ""),
    ): (
        "chatrelay's upload link is its own route with a one-time signature; the reference "
        "app's is whatever its AttachmentStore makes up"
    ),
    D("attachments.create", "body.preview_url", f"{CHATKIT_LINK}/preview", PREVIEW_LINK): (
        PREVIEW_REASON
    ),
    D("threads.create", f"{USER_ITEM}.preview_url", f"{CHATKIT_LINK}/preview", PREVIEW_LINK): (
        PREVIEW_REASON
    ),
    D("items.list", f"{LISTED}.preview_url", f"{CHATKIT_LINK}/preview", PREVIEW_LINK): (
        PREVIEW_REASON
    ),
    D(
        "threads.create",
        f"{USER_ITEM}.upload_descriptor",
        f'{{"headers": {{}}, "method": "POST", "url": "{CHATKIT_LINK}"}}',
        ABSENT,
    ): STALE_UPLOAD_REASON,
    D(
        "items.list",
        f"{LISTED}.upload_descriptor",
        f'{{"headers": {{}}, "method": "POST", "url": "{CHATKIT_LINK}"}}',
        ABSENT,
    ): STALE_UPLOAD_REASON,
    D("threads.create", "events", (), ("thread.updated",)): TITLE_REASON,
}


def user_input(text: str) -> dict[str, Any]:
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": [],
        "inference_options": {},
    }


async def conversation(client: httpx.AsyncClient) -> list[Step]:
    """Every request type a chat without attachments or widgets sends, each id taken from
    this server's own earlier answers."""
    t = Transcript(client, auth("alice"))
    created = await t.send("threads.create", input=user_input("hello there"))
    thread_id = created[0]["thread"]["id"]
    await t.send(
        "threads.add_user_message", thread_id=thread_id, input=user_input("second message")
    )
    page = await t.send("items.list", thread_id=thread_id, order="asc")
    first_user = page["data"][0]["id"]
    newest = await t.send("items.list", "items.list (desc, 3)", thread_id=thread_id, limit=3)
    await t.send(
        "items.list",
        "items.list (desc, 3, after)",
        thread_id=thread_id,
        limit=3,
        after=newest["after"],
    )
    await t.send("threads.get_by_id", thread_id=thread_id)
    await t.send("threads.list")
    retried = await t.send("threads.retry_after_item", thread_id=thread_id, item_id=first_user)
    reply = next(e["item"]["id"] for e in retried if e["type"] == "thread.item.done")
    await t.send("threads.update", thread_id=thread_id, title="Renamed")
    await t.send("items.feedback", thread_id=thread_id, item_ids=[reply], kind="positive")
    await t.send("threads.delete", thread_id=thread_id)
    await t.send("threads.get_by_id", "threads.get_by_id (deleted)", thread_id=thread_id)
    return t.steps


async def tool_call(client: httpx.AsyncClient) -> list[Step]:
    """A turn in which the model calls a todo tool, then reads the thread back."""
    t = Transcript(client, auth("alice"))
    created = await t.send("threads.create", input=user_input("add task buy milk"))
    await t.send("items.list", thread_id=created[0]["thread"]["id"], order="asc")
    return t.steps


async def attachment_turn(client: httpx.AsyncClient) -> list[Step]:
    """An image created, uploaded to its upload link, sent, read back and deleted."""
    t = Transcript(client, auth("alice"))
    created = await t.send(
        "attachments.create", name="cat.png", size=len(PNG), mime_type="image/png"
    )
    url = created["upload_descriptor"]["url"]
    uploaded = await client.post(url, files={"file": ("cat.png", PNG)})
    assert uploaded.status_code == 200, uploaded.text
    message = {**user_input("look"), "attachments": [created["id"]]}
    streamed = await t.send("threads.create", input=message)
    await t.send("items.list", thread_id=streamed[0]["thread"]["id"], order="asc")
    await t.send("attachments.delete", attachment_id=created["id"])
    return t.steps


async def on_reference(
    sequence: Sequence, tools: list[FunctionTool] | None = None
) -> tuple[list[Step], list[Exception]]:
    errors: list[Exception] = []
    server = ReferenceServer(InMemoryStore(), reference_agent(tools))
    transport = httpx.ASGITransport(app=reference_app(server, errors), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await sequence(client), errors


async def test_a_conversation_matches_chatkit_server(app_factory: AppFactory) -> None:
    chatkit, errors = await on_reference(conversation)
    async with client_for(await app_factory()) as client:
        chatrelay = await conversation(client)

    assert [type(e) for e in errors] == [NotFoundError]  # the deleted thread, nothing else
    assert_differences(differences(chatkit, chatrelay), set(KNOWN_DIFFERENCES))


async def test_a_tool_call_turn_matches_chatkit_server(app_factory: AppFactory) -> None:
    chatkit, errors = await on_reference(tool_call, reference_todo_tools())
    async with client_for(await app_factory()) as client:
        chatrelay = await tool_call(client)

    assert errors == []
    assert_differences(differences(chatkit, chatrelay), set(KNOWN_TOOL_DIFFERENCES))


async def test_an_attachment_turn_matches_chatkit_server(app_factory: AppFactory) -> None:
    chatkit, errors = await on_reference(attachment_turn)
    async with client_for(await app_factory()) as client:
        chatrelay = await attachment_turn(client)

    assert errors == []
    assert_differences(differences(chatkit, chatrelay), set(KNOWN_ATTACHMENT_DIFFERENCES))
