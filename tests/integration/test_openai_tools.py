"""The real OpenAI Responses path calling a todo tool, with only the HTTP layer mocked.

The first model call answers with a `function_call`; the agent runs the MCP tool in-process
for the turn's user; the second model call (which carries the tool's output) answers in text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI
from sqlmodel import col, select

from chatrelay.store import Task, transaction
from chatrelay.store.repositories import TaskRepository
from tests.conftest import AppFactory, Database
from tests.integration.helpers import context_of, stored_messages
from tests.integration.test_openai_provider import (
    RESPONSES_URL,
    TEXT_DELTA,
    Respond,
    Upstream,
    chat,
    event_stream,
    sse_body,
    start,
    text_deltas,
)
from tests.integration.test_openai_provider import (
    _response as response_body,
)
from tests.sse import Frame, parse_sse, validate_chatkit

CALL_ID = "call_upstream_0001"
CALL_USAGE = {"input_tokens": 120, "output_tokens": 18, "total_tokens": 138}
ANSWER_USAGE = {"input_tokens": 171, "output_tokens": 6, "total_tokens": 177}
ANSWER = ["Added ", "buy milk."]
TOOLS = {"add_task", "list_tasks", "complete_task", "update_task", "delete_task"}


# -- upstream bodies -------------------------------------------------------------------------


def _response(
    status: str, output: list[dict[str, Any]], usage: dict[str, int] | None
) -> dict[str, Any]:
    return response_body(
        status, output, id="resp_upstream_tools", usage=None if usage is None else _usage(usage)
    )


def _usage(counts: dict[str, int]) -> dict[str, Any]:
    details = {"input_tokens_details": {"cached_tokens": 0}}
    return {**counts, **details, "output_tokens_details": {"reasoning_tokens": 0}}


def _stream(item: dict[str, Any], middle: list[dict[str, Any]], usage: dict[str, int]) -> bytes:
    """created, item added, `middle`, item done, completed (with `usage`), numbered."""
    pending = {**item, "status": "in_progress"}
    if item["type"] == "function_call":
        pending["arguments"] = ""
    else:
        pending["content"] = []
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response("in_progress", [], None)},
        {"type": "response.output_item.added", "output_index": 0, "item": pending},
        *middle,
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": _response("completed", [item], usage)},
    ]
    return sse_body([{**event, "sequence_number": n} for n, event in enumerate(events)])


def function_call(name: str, arguments: dict[str, Any], usage: dict[str, int]) -> bytes:
    """A model response that only calls `name` with `arguments`."""
    text = json.dumps(arguments)
    item: dict[str, Any] = {"id": "fc_upstream_0001", "type": "function_call", "call_id": CALL_ID}
    item |= {"name": name, "arguments": text, "status": "completed"}
    ids = {"item_id": item["id"], "output_index": 0}
    middle = [
        {"type": "response.function_call_arguments.delta", **ids, "delta": text},
        {"type": "response.function_call_arguments.done", **ids, "arguments": text},
    ]
    return _stream(item, middle, usage)


def text_answer(deltas: list[str], usage: dict[str, int]) -> bytes:
    """A model response that streams `deltas` as one assistant message."""
    text = "".join(deltas)
    part = {"type": "output_text", "text": "", "annotations": []}
    item: dict[str, Any] = {"id": "msg_upstream_tools", "type": "message", "role": "assistant"}
    item |= {"status": "completed", "content": [{**part, "text": text}]}
    ids = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    middle = [
        {"type": "response.content_part.added", **ids, "part": part},
        *(
            {"type": "response.output_text.delta", **ids, "delta": d, "logprobs": []}
            for d in deltas
        ),
        {"type": "response.output_text.done", **ids, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **ids, "part": {**part, "text": text}},
    ]
    return _stream(item, middle, usage)


def scripted(*bodies: bytes) -> Respond:
    """Answer the model calls with `bodies`, in order; any extra call is a server error."""
    remaining = list(bodies)

    def respond(_request: httpx.Request) -> httpx.Response:
        if not remaining:
            return httpx.Response(500, json={"error": {"message": "unexpected model call"}})
        return event_stream(remaining.pop(0))

    return respond


def tool_output_sent(body: dict[str, Any]) -> str:
    """The `function_call_output` for our call in a request's input, as text."""
    (item,) = [
        item
        for item in body["input"]
        if item.get("type") == "function_call_output" and item.get("call_id") == CALL_ID
    ]
    output = item["output"]
    return output if isinstance(output, str) else json.dumps(output)


# -- the app and the database ----------------------------------------------------------------


async def app_with_model(
    app_factory: AppFactory, database: Database, *bodies: bytes
) -> tuple[FastAPI, Upstream]:
    upstream = Upstream(RESPONSES_URL, scripted(*bodies))
    app = await start(app_factory, database, upstream, openai_api_key="sk-test")
    return app, upstream


async def tasks_of(app: FastAPI, user_id: str) -> list[Task]:
    async with transaction(context_of(app).sessions) as db:
        statement = select(Task).where(col(Task.user_id) == user_id).order_by(col(Task.id))
        return list((await db.exec(statement)).all())


async def add_task_for(app: FastAPI, user_id: str, title: str) -> Task:
    async with transaction(context_of(app).sessions) as db:
        return await TaskRepository(db, user_id).add(title, None)


def index_of(frames: list[Frame], matches: Callable[[Frame], bool]) -> int:
    found = [n for n, frame in enumerate(frames) if matches(frame)]
    assert found, "no such frame"
    return found[0]


def item_event(kind: str, item_type: str) -> Callable[[Frame], bool]:
    return lambda f: f.type == kind and f.data["item"]["type"] == item_type


def summed(*usages: dict[str, int]) -> dict[str, int]:
    return {key: sum(usage[key] for usage in usages) for key in usages[0]}


# -- tests -----------------------------------------------------------------------------------


async def test_a_tool_call_streams_its_workflow_before_the_answer(
    app_factory: AppFactory, database: Database
) -> None:
    app, upstream = await app_with_model(
        app_factory,
        database,
        function_call("add_task", {"title": "buy milk"}, CALL_USAGE),
        text_answer(ANSWER, ANSWER_USAGE),
    )

    response = await chat(app, "add a task to buy milk", sse=True)

    assert response.status_code == 200, response.text
    frames = parse_sse(response.text)
    validate_chatkit(frames)
    assert text_deltas(frames) == ANSWER
    first_delta = index_of(frames, lambda f: f.update_type == TEXT_DELTA)
    progress = index_of(frames, lambda f: f.type == "progress_update")
    workflow_added = index_of(frames, item_event("thread.item.added", "workflow"))
    task_complete = index_of(
        frames,
        lambda f: (
            f.update_type == "workflow.task.updated"
            and f.data["update"]["task"]["status_indicator"] == "complete"
        ),
    )
    workflow_done = index_of(frames, item_event("thread.item.done", "workflow"))
    assistant_added = index_of(frames, item_event("thread.item.added", "assistant_message"))
    assert progress < first_delta and workflow_added < first_delta
    assert workflow_added < task_complete < workflow_done < assistant_added < first_delta
    (task,) = frames[workflow_done].data["item"]["workflow"]["tasks"]
    assert task["title"] == "add_task" and task["status_indicator"] == "complete"
    assert "buy milk" in task["content"]

    (stored,) = await tasks_of(app, "alice")
    assert (stored.title, stored.completed) == ("buy milk", False)
    first, second = upstream.bodies()
    assert TOOLS <= {tool.get("name") for tool in first["tools"]}
    assert json.loads(tool_output_sent(second))["id"] == stored.id


async def test_json_reply_records_the_tool_call_and_sums_usage(
    app_factory: AppFactory, database: Database
) -> None:
    app, upstream = await app_with_model(
        app_factory,
        database,
        function_call("add_task", {"title": "buy milk"}, CALL_USAGE),
        text_answer(ANSWER, ANSWER_USAGE),
    )

    response = await chat(app, "add a task to buy milk")

    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["message"] == "Added buy milk."
    (call,) = reply["tool_calls"]
    assert (call["tool_name"], call["parameters"]) == ("add_task", {"title": "buy milk"})
    (stored,) = await tasks_of(app, "alice")
    result = call["result"]
    assert isinstance(result, dict)
    assert (result["id"], result["title"]) == (stored.id, "buy milk")
    assert (result["description"], result["completed"]) == (None, False)
    assert reply["usage"] == summed(CALL_USAGE, ANSWER_USAGE)

    assistant = (await stored_messages(app, reply["conversation_id"]))[-1]
    assert assistant.tool_calls == reply["tool_calls"]
    assert assistant.usage == reply["usage"]
    assert len(upstream.requests) == 2
    assert json.loads(tool_output_sent(upstream.bodies()[1]))["title"] == "buy milk"


async def test_another_users_task_id_is_not_found_and_left_alone(
    app_factory: AppFactory, database: Database
) -> None:
    sorry = ["That task ", "was not found."]
    app, upstream = await app_with_model(app_factory, database)
    bobs = await add_task_for(app, "bob", "bob's task")
    assert bobs.id is not None
    before = [task.model_dump() for task in await tasks_of(app, "bob")]  # as read back
    upstream.respond = scripted(
        function_call("complete_task", {"task_id": bobs.id}, CALL_USAGE),
        text_answer(sorry, ANSWER_USAGE),
    )

    response = await chat(app, f"complete task {bobs.id}")

    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["message"] == "".join(sorry)
    (call,) = reply["tool_calls"]
    assert (call["tool_name"], call["parameters"]) == ("complete_task", {"task_id": bobs.id})
    assert isinstance(call["result"], str)
    assert f"task {bobs.id} not found" in call["result"]
    assert f"task {bobs.id} not found" in tool_output_sent(upstream.bodies()[1])
    assert [task.model_dump() for task in await tasks_of(app, "bob")] == before
    assert await tasks_of(app, "alice") == []
