"""The todo tools through the chat endpoint, with the offline model (no API key)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlmodel import col, select

from chatrelay.store import Task, transaction
from tests.conftest import auth
from tests.integration.helpers import SSE, context_of, stored_messages
from tests.sse import done_item, kinds, parse_sse, validate_chatkit


async def say(client: httpx.AsyncClient, message: str, user: str = "alice") -> dict[str, Any]:
    response = await client.post(f"/api/{user}/chat", json={"message": message}, headers=auth(user))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def tasks_of(app: FastAPI, user: str) -> list[Task]:
    async with transaction(context_of(app).sessions) as db:
        statement = select(Task).where(col(Task.user_id) == user).order_by(col(Task.number))
        return list((await db.exec(statement)).all())


async def test_add_list_complete_rename_delete(client: httpx.AsyncClient, app: FastAPI) -> None:
    added = await say(client, "add task buy milk")
    assert added["message"] == f"Added task {added['tool_calls'][0]['result']['id']}: buy milk."
    [call] = added["tool_calls"]
    assert call["tool_name"] == "add_task"
    assert call["parameters"] == {"title": "buy milk"}
    assert call["result"]["title"] == "buy milk" and call["result"]["completed"] is False
    milk = call["result"]["id"]
    mom = (await say(client, "add a task to call mom"))["tool_calls"][0]["result"]["id"]

    listed = await say(client, "show my tasks")
    assert listed["message"] == f"Your tasks:\n[ ] {milk}: buy milk\n[ ] {mom}: call mom"
    assert listed["tool_calls"][0]["result"]["count"] == 2

    done = await say(client, f"complete task {milk}")
    assert done["message"] == f"Marked task {milk} as done: buy milk."
    renamed = await say(client, f"rename task {mom} to call dad")
    assert renamed["message"] == f"Updated task {mom}: call dad."
    pending = await say(client, "list pending tasks")
    assert pending["message"] == f"Your tasks:\n[ ] {mom}: call dad"

    deleted = await say(client, f"delete task {milk}")
    assert deleted["message"] == f"Deleted task {milk}: buy milk."
    assert [(t.number, t.title, t.completed) for t in await tasks_of(app, "alice")] == [
        (mom, "call dad", False)
    ]


async def test_tool_errors_are_relayed_not_crashes(client: httpx.AsyncClient) -> None:
    missing = await say(client, "complete task 999")
    assert "task 999 not found" in missing["message"]
    assert missing["message"].startswith("Sorry, that didn't work")
    assert "not found" in missing["tool_calls"][0]["result"]

    too_long = await say(client, "add task " + "x" * 250)
    assert too_long["message"].startswith("Sorry, that didn't work")
    assert "200" in too_long["tool_calls"][0]["result"]


async def test_tool_calls_are_stored_with_the_reply(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    reply = await say(client, "add task water plants")
    stored = await stored_messages(app, reply["conversation_id"])
    assert stored[1].tool_calls == reply["tool_calls"]
    assert stored[1].content == reply["message"]


async def test_a_tool_turn_streams_the_call_before_the_text(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/alice/chat", json={"message": "add task stream me"}, headers={**auth(), **SSE}
    )
    frames = parse_sse(response.text)
    validate_chatkit(frames)
    item_types = [f.data.get("item", {}).get("type") for f in frames]
    assert kinds(frames)[:7] == [
        "thread.created",
        "thread.item.done",  # the user message
        "progress_update",  # the model decided to call a tool
        "thread.item.added",  # ...shown as a workflow task, loading
        "workflow.task.updated",  # the result arrived
        "thread.item.done",  # the workflow is complete
        "thread.item.added",  # and only now the reply's text begins
    ]
    assert item_types[3] == item_types[5] == "workflow"
    assert item_types[6] == "assistant_message"
    assert "add_task" in frames[2].data["text"]
    loading = frames[3].data["item"]["workflow"]["tasks"][0]
    assert (loading["title"], loading["status_indicator"]) == ("add_task", "loading")
    complete = frames[4].data["update"]["task"]
    assert complete["status_indicator"] == "complete"
    assert '"stream me"' in complete["content"]
    assert done_item(frames)["content"][0]["text"].startswith("Added task")


async def test_users_never_see_or_touch_each_others_tasks(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    alices = (await say(client, "add task alice's secret"))["tool_calls"][0]["result"]["id"]

    assert (await say(client, "list tasks", user="bob"))["message"] == "You have no tasks."
    for command in (
        f"complete task {alices}",
        f"delete task {alices}",
        f"rename task {alices} to x",
    ):
        reply = await say(client, command, user="bob")
        assert f"task {alices} not found" in reply["message"]

    [task] = await tasks_of(app, "alice")
    assert (task.number, task.title, task.completed) == (alices, "alice's secret", False)
    assert await tasks_of(app, "bob") == []
