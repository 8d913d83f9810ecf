"""The real OpenAI path (Responses and Chat Completions), with only the HTTP layer mocked."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from chatrelay.agents import ChatrelayModelProvider
from chatrelay.turns import Failure
from tests.conftest import AppFactory, Database, auth, client_for, make_settings
from tests.integration.helpers import SSE, stored_messages
from tests.sse import Frame, done_item, kinds, parse_sse, turn_kinds, validate_chatkit

MODEL = "gpt-4o-mini"
RESPONSES_URL = "https://api.openai.com/v1/responses"
COMPLETIONS_URL = "http://llm.local/v1/chat/completions"
UPSTREAM_ITEM_ID = "msg_upstream_0001"  # the provider's own id: it must never reach clients
TEXT_DELTA = "assistant_message.content_part.text_delta"
DELTAS = ["Paris ", "is the ", "capital ", "of France."]
USAGE = {"input_tokens": 31, "output_tokens": 7, "total_tokens": 38}

Respond = Callable[[httpx.Request], httpx.Response]


# -- upstream bodies -------------------------------------------------------------------------


def sse_body(events: list[dict[str, Any]], *, named: bool = True, done: bool = False) -> bytes:
    """An upstream SSE body; Responses events carry an `event:` line, Chat chunks do not."""
    blocks = [
        (f"event: {event['type']}\n" if named else "") + f"data: {json.dumps(event)}\n\n"
        for event in events
    ]
    if done:
        blocks.append("data: [DONE]\n\n")
    return "".join(blocks).encode()


def event_stream(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def _response(status: str, output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "resp_upstream_0001",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": MODEL,
        "status": status,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "usage": None,
        **extra,
    }


def _message(status: str, text: str | None = None) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": []}]
    return {
        "id": UPSTREAM_ITEM_ID,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def responses_events(deltas: list[str], *, failure: dict[str, Any] | None = None) -> bytes:
    """A Responses stream: the full happy sequence, or deltas then `response.failed`."""
    text = "".join(deltas)
    part = {"type": "output_text", "text": "", "annotations": []}
    ids = {"item_id": UPSTREAM_ITEM_ID, "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response("in_progress", [])},
        {"type": "response.output_item.added", "output_index": 0, "item": _message("in_progress")},
        {"type": "response.content_part.added", **ids, "part": part},
        *(
            {"type": "response.output_text.delta", **ids, "delta": d, "logprobs": []}
            for d in deltas
        ),
    ]
    if failure is not None:
        events.append(
            {"type": "response.failed", "response": _response("failed", [], error=failure)}
        )
    else:
        usage = {
            **USAGE,
            "input_tokens_details": {"cached_tokens": 3},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        done = _message("completed", text)
        events += [
            {"type": "response.output_text.done", **ids, "text": text, "logprobs": []},
            {"type": "response.content_part.done", **ids, "part": {**part, "text": text}},
            {"type": "response.output_item.done", "output_index": 0, "item": done},
            {"type": "response.completed", "response": _response("completed", [done], usage=usage)},
        ]
    return sse_body([{**event, "sequence_number": n} for n, event in enumerate(events)])


def completion_chunks(deltas: list[str], usage: dict[str, int]) -> bytes:
    """A Chat Completions stream: role, content deltas, finish, a usage-only chunk, [DONE]."""
    head = {
        "id": "chatcmpl-upstream",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": d}) for d in deltas),
        chunk({}, "stop"),
        {**head, "choices": [], "usage": usage},
    ]
    return sse_body(chunks, named=False, done=True)


# -- the app, wired to a mocked upstream ----------------------------------------------------


@dataclass
class Upstream:
    """A mock transport: every request is recorded and answered by `respond` (one URL only)."""

    url: str
    respond: Respond
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method != "POST" or str(request.url) != self.url:
            return httpx.Response(404, json={"error": {"message": f"unexpected {request.url}"}})
        return self.respond(request)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


async def start(
    app_factory: AppFactory, database: Database, upstream: Upstream, **overrides: Any
) -> FastAPI:
    overrides = {"model": MODEL, **overrides}
    http_client = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    provider = ChatrelayModelProvider(make_settings(database, **overrides), http_client=http_client)
    return await app_factory(provider=provider, **overrides)


async def chat(app: FastAPI, message: str, *, sse: bool = False) -> httpx.Response:
    headers = {**auth(), **(SSE if sse else {})}
    async with client_for(app) as client:
        return await client.post("/api/alice/chat", json={"message": message}, headers=headers)


def text_deltas(frames: list[Frame]) -> list[str]:
    return [str(f.data["update"]["delta"]) for f in frames if f.update_type == TEXT_DELTA]


def asks_for(body: dict[str, Any], message: str) -> bool:
    items = body.get("input") or body.get("messages") or []
    return any(item.get("role") == "user" and item.get("content") == message for item in items)


# -- Responses API ---------------------------------------------------------------------------


async def test_responses_stream_is_relayed_delta_by_delta(
    app_factory: AppFactory, database: Database
) -> None:
    upstream = Upstream(RESPONSES_URL, lambda _: event_stream(responses_events(DELTAS)))
    app = await start(app_factory, database, upstream, openai_api_key="sk-test")

    response = await chat(app, "What is the capital of France?", sse=True)

    assert response.status_code == 200
    frames = parse_sse(response.text)
    validate_chatkit(frames)
    assert kinds(frames) == turn_kinds(len(DELTAS))
    assert text_deltas(frames) == DELTAS
    final = done_item(frames)
    assert final["content"][0]["text"] == "".join(DELTAS)
    assert final["id"].startswith("msg_") and final["id"] != UPSTREAM_ITEM_ID
    assert UPSTREAM_ITEM_ID not in response.text

    (request,) = upstream.requests
    assert request.headers["authorization"] == "Bearer sk-test"
    (body,) = upstream.bodies()
    assert body["stream"] is True
    assert body["model"] == MODEL
    assert asks_for(body, "What is the capital of France?")


async def test_responses_usage_and_our_own_message_id(
    app_factory: AppFactory, database: Database
) -> None:
    upstream = Upstream(RESPONSES_URL, lambda _: event_stream(responses_events(DELTAS)))
    app = await start(app_factory, database, upstream, openai_api_key="sk-test")

    response = await chat(app, "Capital of France?")

    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["message"] == "".join(DELTAS)
    assert reply["usage"] == USAGE
    assert reply["message_id"].startswith("msg_") and reply["message_id"] != UPSTREAM_ITEM_ID
    stored = await stored_messages(app, reply["conversation_id"])
    assert [(m.role, m.status) for m in stored] == [
        ("user", "completed"),
        ("assistant", "completed"),
    ]
    assert stored[1].id == reply["message_id"]
    assert stored[1].usage == USAGE
    assert upstream.bodies()[0]["stream"] is True


RATE_LIMITED = {
    "error": {
        "message": "Rate limit reached for gpt-4o-mini on tokens per min (TPM).",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}


def rate_limited(_: httpx.Request) -> httpx.Response:
    return httpx.Response(429, json=RATE_LIMITED, headers={"x-request-id": "req_upstream_429"})


async def test_rate_limit_is_a_503_with_correlation_id_and_nothing_stored(
    app_factory: AppFactory, database: Database
) -> None:
    upstream = Upstream(RESPONSES_URL, rate_limited)
    app = await start(app_factory, database, upstream, openai_api_key="sk-test")

    response = await chat(app, "hello")

    assert response.status_code == 503
    correlation_id = response.headers["x-request-id"]
    assert correlation_id != "req_upstream_429"
    assert response.json() == {"detail": Failure.MODEL.value, "correlation_id": correlation_id}
    # One call to the right endpoint: max_retries=0, a retry is the user's call.
    assert [str(request.url) for request in upstream.requests] == [RESPONSES_URL]
    assert await stored_messages(app) == []


async def test_rate_limit_streams_a_retryable_error_and_ends(
    app_factory: AppFactory, database: Database
) -> None:
    upstream = Upstream(RESPONSES_URL, rate_limited)
    app = await start(app_factory, database, upstream, openai_api_key="sk-test")

    response = await chat(app, "hello", sse=True)

    frames = parse_sse(response.text)
    validate_chatkit(frames)
    assert kinds(frames) == ["thread.created", "thread.item.done", "error"]
    error = frames[-1].data
    assert error["allow_retry"] is True
    assert response.headers["x-request-id"] in error["message"]
    assert await stored_messages(app) == []


async def test_mid_stream_failure_closes_the_item_and_keeps_partial_text(
    app_factory: AppFactory, database: Database
) -> None:
    failure = {"code": "server_error", "message": "The server had an error."}
    body = responses_events(["Partial ", "answer"], failure=failure)
    upstream = Upstream(RESPONSES_URL, lambda _: event_stream(body))
    app = await start(app_factory, database, upstream, openai_api_key="sk-test")

    response = await chat(app, "Tell me everything", sse=True)

    frames = parse_sse(response.text)
    validate_chatkit(frames)
    assert kinds(frames) == turn_kinds(2, error=True)
    assert text_deltas(frames) == ["Partial ", "answer"]
    assert done_item(frames)["content"][0]["text"] == "Partial answer"
    assert frames[-1].data["allow_retry"] is True
    stored = await stored_messages(app, frames[0].data["thread"]["id"])
    assert [(m.role, m.status, m.content) for m in stored] == [
        ("user", "completed", "Tell me everything"),
        ("assistant", "incomplete", "Partial answer"),
    ]
    assert stored[1].id == done_item(frames)["id"]


# -- Chat Completions (an OpenAI-compatible server) ------------------------------------------

COMPLETION_USAGE = {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
LOCAL = {"openai_api": "chat_completions", "openai_base_url": "http://llm.local/v1"}


async def test_chat_completions_stream_reports_usage_and_our_ids(
    app_factory: AppFactory, database: Database
) -> None:
    upstream = Upstream(
        COMPLETIONS_URL, lambda _: event_stream(completion_chunks(DELTAS, COMPLETION_USAGE))
    )
    app = await start(app_factory, database, upstream, **LOCAL)

    streamed = await chat(app, "Capital of France?", sse=True)
    response = await chat(app, "And of Italy?")

    frames = parse_sse(streamed.text)
    validate_chatkit(frames)
    assert text_deltas(frames) == DELTAS
    assert "__fake_id__" not in streamed.text
    assert all(f.data["item"]["id"].startswith("msg_") for f in frames if "item" in f.data)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["message"] == "".join(DELTAS)
    assert reply["message_id"].startswith("msg_") and reply["message_id"] != "__fake_id__"
    assert reply["usage"] == {"input_tokens": 12, "output_tokens": 4, "total_tokens": 16}

    first, second = upstream.bodies()
    assert first["stream"] is True
    assert first["stream_options"] == {"include_usage": True}
    assert asks_for(first, "Capital of France?") and asks_for(second, "And of Italy?")
    assert upstream.requests[0].headers["authorization"] == "Bearer not-needed"
