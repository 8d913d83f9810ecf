"""`/mcp`: the todo tools for external MCP clients, over stateless streamable HTTP.

A real `mcp` client (on `httpx2`, talking to the app in-process) with a bearer token: the
tools act for the token's user and nobody else, whatever the arguments say.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import jwt
import pytest
from fastapi import FastAPI
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import PARSE_ERROR, CallToolResult, TextContent
from sqlmodel import col, select

from chatrelay.schemas.text import LONE_SURROGATE
from chatrelay.store import Task, transaction
from chatrelay.tools.todo import acting_as, build_todo_server
from tests.conftest import TEST_SECRET, AppFactory, client_for, token_for
from tests.integration.helpers import context_of

MCP_URL = "http://test/mcp"
TOOLS = {"add_task", "list_tasks", "complete_task", "update_task", "delete_task"}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
MCP_ACCEPT = {"Accept": "application/json, text/event-stream"}


# -- helpers ---------------------------------------------------------------------------------


@asynccontextmanager
async def mcp_session(app: FastAPI, user_id: str) -> AsyncIterator[Client]:
    """An MCP client session at `/mcp`, authenticated as `user_id`."""
    http = httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {token_for(user_id)}"},
    )
    async with http, Client(streamable_http_client(MCP_URL, http_client=http)) as client:
        yield client


async def call_ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call a tool that must succeed; its structured content."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result
    assert result.structured_content is not None, result
    return dict(result.structured_content)


def error_text(result: CallToolResult) -> str:
    """The text of a tool error (the call must have failed)."""
    assert result.is_error, result
    assert result.structured_content is None
    return " ".join(part.text for part in result.content if isinstance(part, TextContent))


async def tasks_of(app: FastAPI, user_id: str) -> list[Task]:
    async with transaction(context_of(app).sessions) as db:
        statement = select(Task).where(col(Task.user_id) == user_id).order_by(col(Task.number))
        return list((await db.exec(statement)).all())


def signed(claims: dict[str, Any], *, secret: str = TEST_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


async def task_row(app: FastAPI, user_id: str, number: int) -> dict[str, Any] | None:
    """The stored row of `user_id`'s task `number` (what the tools call its id)."""
    async with transaction(context_of(app).sessions) as db:
        statement = select(Task).where(col(Task.user_id) == user_id, col(Task.number) == number)
        task = (await db.exec(statement)).first()
        return None if task is None else task.model_dump()


# -- tools, schemas and structured results ---------------------------------------------------


async def test_lists_the_five_tools_with_schemas_and_returns_structured_content(
    app_factory: AppFactory,
) -> None:
    app = await app_factory()

    async with mcp_session(app, "alice") as client:
        tools = (await client.list_tools()).tools
        added = await call_ok(client, "add_task", {"title": "  buy milk ", "description": "2L"})
        listed = await call_ok(client, "list_tasks", {"status": "pending"})

    assert {tool.name for tool in tools} == TOOLS and len(tools) == len(TOOLS)
    for tool in tools:
        assert tool.input_schema["type"] == "object", tool.name
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        parameters = set(tool.input_schema.get("properties", {}))
        assert not parameters & {"user", "user_id", "userId"}, f"{tool.name}: {parameters}"

    assert added["title"] == "buy milk" and added["description"] == "2L"
    assert added["completed"] is False and isinstance(added["id"], int)
    assert listed["status"] == "pending" and listed["count"] == 1
    assert listed["tasks"] == [added]
    (stored,) = await tasks_of(app, "alice")
    assert (stored.number, stored.title, stored.description) == (added["id"], "buy milk", "2L")


# -- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer not-a-jwt",
        f"Bearer {signed({'sub': 'alice', 'exp': time.time() + 600}, secret='z' * 64)}",
        f"Bearer {signed({'sub': 'alice', 'exp': time.time() - 600})}",
        f"Basic {token_for('alice')}",
    ],
    ids=["missing", "malformed", "wrong-signature", "expired", "wrong-scheme"],
)
async def test_requests_without_a_valid_bearer_token_get_401(
    app_factory: AppFactory, authorization: str | None
) -> None:
    app = await app_factory()
    headers = {**MCP_ACCEPT, **({"Authorization": authorization} if authorization else {})}

    async with client_for(app) as http:
        response = await http.post("/mcp", json=LIST_TOOLS, headers=headers)

    assert response.status_code == 401, response.text
    # The challenge in full (RFC 9728 metadata, RFC 6750 error codes): test_mcp_edge.py.
    assert response.headers["www-authenticate"].startswith("Bearer resource_metadata=")
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail


# -- isolation between users -----------------------------------------------------------------


async def test_another_users_tasks_are_invisible_and_untouchable(
    app_factory: AppFactory,
) -> None:
    app = await app_factory()
    async with mcp_session(app, "alice") as alice:
        task_id = (await call_ok(alice, "add_task", {"title": "alice's secret"}))["id"]
    before = await task_row(app, "alice", task_id)

    async with mcp_session(app, "bob") as bob:
        listed = await call_ok(bob, "list_tasks", {})
        attempts = {
            "complete_task": await bob.call_tool("complete_task", {"task_id": task_id}),
            "update_task": await bob.call_tool("update_task", {"task_id": task_id, "title": "x"}),
            "delete_task": await bob.call_tool("delete_task", {"task_id": task_id}),
        }

    assert listed == {"status": "all", "count": 0, "tasks": []}
    for tool, result in attempts.items():
        assert f"task {task_id} not found" in error_text(result), tool
    assert await task_row(app, "alice", task_id) == before
    assert await tasks_of(app, "bob") == []


async def test_a_user_id_argument_cannot_act_for_another_user(app_factory: AppFactory) -> None:
    app = await app_factory()

    async with mcp_session(app, "bob") as bob:
        result = await bob.call_tool("add_task", {"title": "planted", "user_id": "alice"})

    assert await tasks_of(app, "alice") == []
    if not result.is_error:  # the extra argument is ignored: the task is bob's
        assert result.structured_content is not None
        (task,) = await tasks_of(app, "bob")
        assert (task.number, task.title) == (result.structured_content["id"], "planted")


# -- tool errors -----------------------------------------------------------------------------


async def test_update_with_nothing_to_change_is_a_tool_error(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with mcp_session(app, "alice") as client:
        task_id = (await call_ok(client, "add_task", {"title": "keep me"}))["id"]
        before = await task_row(app, "alice", task_id)

        result = await client.call_tool("update_task", {"task_id": task_id})

    assert "nothing to update: give a new title or description" in error_text(result)
    assert await task_row(app, "alice", task_id) == before


async def test_a_title_over_200_characters_is_refused_by_validation(
    app_factory: AppFactory,
) -> None:
    app = await app_factory()
    async with mcp_session(app, "alice") as client:
        too_long = await client.call_tool("add_task", {"title": "x" * 201})
        longest = await call_ok(client, "add_task", {"title": "y" * 200})

    message = error_text(too_long)
    assert "title" in message and "at most 200 characters" in message
    assert [task.title for task in await tasks_of(app, "alice")] == [longest["title"]]


# -- a lone UTF-16 surrogate in the arguments (regression: it was a 500 elsewhere) -----------


def tools_call(tool: str, arguments: bytes) -> bytes:
    """A raw `tools/call` message: `arguments` is JSON as a client wrote it (`\\ud800`)."""
    head = f'{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}",'
    return head.encode() + b'"arguments":' + arguments + b"}}"


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("add_task", b'{"title":"a\\ud800b"}'),
        ("add_task", b'{"title":"ok","description":"\\udfff"}'),
        ("add_task", b'{"title":"a\xed\xa0\x80b"}'),  # a surrogate's UTF-8 bytes, not UTF-8
        ("update_task", b'{"task_id":1,"title":"\\ud800"}'),
        ("update_task", b'{"task_id":1,"description":"\\ud800"}'),
    ],
    ids=["add-title", "add-description", "add-raw-bytes", "update-title", "update-description"],
)
async def test_a_lone_surrogate_over_http_is_a_json_rpc_parse_error(
    app_factory: AppFactory, tool: str, arguments: bytes
) -> None:
    """The streamable HTTP transport parses with pydantic-core, which refuses the escape: the
    transport's own answer to a message it cannot read, 400 with a JSON-RPC error, no id."""
    app = await app_factory()
    async with mcp_session(app, "alice") as client:
        task_id = (await call_ok(client, "add_task", {"title": "milk"}))["id"]
    before = await task_row(app, "alice", task_id)
    async with client_for(app) as http:
        response = await http.post(
            "/mcp",
            content=tools_call(tool, arguments),
            headers={
                **MCP_ACCEPT,
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token_for('alice')}",
            },
        )

    assert response.status_code == 400
    body = response.json()
    assert (body["jsonrpc"], body["id"], body["error"]["code"]) == ("2.0", None, PARSE_ERROR)
    assert [task.number for task in await tasks_of(app, "alice")] == [task_id]
    assert await task_row(app, "alice", task_id) == before


async def test_a_lone_surrogate_in_an_in_process_call_is_a_tool_error(
    app_factory: AppFactory,
) -> None:
    """The agent's calls skip JSON: the decoded string reaches the tool's own validation."""
    app = await app_factory()
    server = build_todo_server(context_of(app).sessions)
    async with Client(server) as client:
        with acting_as("alice"):
            added = await client.call_tool("add_task", {"title": "a\ud800b"})
            described = await client.call_tool("add_task", {"title": "ok", "description": "\udfff"})

    for result in (added, described):
        assert LONE_SURROGATE in error_text(result)
    assert await tasks_of(app, "alice") == []


async def test_a_surrogate_pair_is_a_valid_title(app_factory: AppFactory) -> None:
    app = await app_factory()
    async with client_for(app) as http:
        response = await http.post(
            "/mcp",
            content=tools_call("add_task", b'{"title":"\\ud83d\\ude00 milk"}'),
            headers={
                **MCP_ACCEPT,
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token_for('alice')}",
            },
        )

    assert response.status_code == 200, response.text
    assert response.json()["result"]["structuredContent"]["title"] == "\U0001f600 milk"
    assert [task.title for task in await tasks_of(app, "alice")] == ["\U0001f600 milk"]
