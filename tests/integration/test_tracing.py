"""OpenTelemetry traces of turns, read from the SDK's in-memory exporter: which spans, under
which parents, with which GenAI attributes, content only when asked for, errors as errors."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest
from agents import ModelProvider
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from chatrelay.logs import JsonFormatter
from chatrelay.server import create_app
from chatrelay.telemetry import Telemetry
from chatrelay.turns import NO_TRACER
from tests.conftest import Database, auth, client_for, make_settings, running
from tests.fakes.models import FaultyModel, SingleModelProvider, connection_error
from tests.integration.helpers import context_of

CHAT = "POST /api/{user_id}/chat"
TURN = "invoke_agent chatrelay"
CONTENT_KEYS = {
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
}


@asynccontextmanager
async def traced_client(
    database: Database, *, capture: bool = False, provider: ModelProvider | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(
        make_settings(database),
        provider=provider,
        database_schema=database.schema,
        telemetry=Telemetry(tracer_provider, capture_content=capture),
    )
    async with running(app), client_for(app) as client:
        yield client, exporter


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    named: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        named.setdefault(span.name, []).append(span)
    return named


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def only(named: dict[str, list[ReadableSpan]], name: str) -> ReadableSpan:
    [span] = named[name]
    return span


async def test_a_turn_is_a_trace_of_request_turn_model_tool_and_commit(database: Database) -> None:
    async with traced_client(database) as (client, exporter):
        answer = await client.post(
            "/api/alice/chat", json={"message": "add task buy milk"}, headers=auth()
        )
        assert answer.status_code == 200, answer.text
        named = by_name(exporter.get_finished_spans())

    request, turn = only(named, CHAT), only(named, TURN)
    assert request.kind is SpanKind.SERVER and request.parent is None
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 200
    assert request.attributes["http.route"] == "/api/{user_id}/chat"
    assert parent_of(turn) == request.context.span_id
    assert turn.attributes is not None
    assert turn.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert turn.attributes["gen_ai.conversation.id"] == answer.json()["conversation_id"]
    assert turn.attributes["chatrelay.turn.outcome"] == "completed"
    assert turn.status.status_code is StatusCode.UNSET

    chats = named["chat offline"]
    assert len(chats) == 2  # the tool call, then the reply that confirms it
    for chat in chats:
        assert chat.kind is SpanKind.CLIENT and parent_of(chat) == turn.context.span_id
        attributes = dict(chat.attributes or {})
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.request.model"] == "offline"
        assert attributes["gen_ai.response.model"] == "offline"
        assert attributes["gen_ai.provider.name"] == "chatrelay.offline"
        assert int(attributes["gen_ai.usage.input_tokens"]) > 0  # type: ignore[arg-type]
        assert int(attributes["gen_ai.usage.output_tokens"]) > 0  # type: ignore[arg-type]
    assert [dict(c.attributes or {})["gen_ai.response.finish_reasons"] for c in chats] == [
        ("tool_calls",),
        ("stop",),
    ]
    tool = only(named, "execute_tool add_task")
    [call] = answer.json()["tool_calls"]
    assert parent_of(tool) == turn.context.span_id
    assert tool.attributes is not None and tool.attributes["gen_ai.tool.name"] == "add_task"
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert str(tool.attributes["gen_ai.tool.call.id"]).startswith("call_")
    assert chats[0].end_time <= tool.start_time <= tool.end_time <= chats[1].start_time  # type: ignore[operator]
    commit = only(named, "commit turn")
    assert parent_of(commit) == turn.context.span_id
    assert commit.attributes is not None and commit.attributes["chatrelay.committed"] is True
    for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"):  # the turn's sums
        assert turn.attributes[key] == sum(int(dict(c.attributes or {})[key]) for c in chats)  # type: ignore[arg-type]
    assert call["tool_name"] == "add_task"
    every = {key for span in exporter.get_finished_spans() for key in (span.attributes or {})}
    assert not every & CONTENT_KEYS, "message content is recorded only when asked for"


async def test_content_is_recorded_with_capture_content(database: Database) -> None:
    async with traced_client(database, capture=True) as (client, exporter):
        answer = await client.post(
            "/api/alice/chat", json={"message": "add task buy milk"}, headers=auth()
        )
        assert answer.status_code == 200
        named = by_name(exporter.get_finished_spans())
    first, second = named["chat offline"]
    inputs = json.loads(str(dict(first.attributes or {})["gen_ai.input.messages"]))
    assert inputs[-1] == {
        "role": "user",
        "parts": [{"type": "text", "content": "add task buy milk"}],
    }
    [called] = json.loads(str(dict(first.attributes or {})["gen_ai.output.messages"]))[0]["parts"]
    assert called["type"] == "tool_call" and called["arguments"] == {"title": "buy milk"}
    reply = json.loads(str(dict(second.attributes or {})["gen_ai.output.messages"]))
    assert reply[0]["parts"][0]["content"] == answer.json()["message"]
    tool = dict(only(named, "execute_tool add_task").attributes or {})
    assert json.loads(str(tool["gen_ai.tool.call.arguments"])) == {"title": "buy milk"}
    assert json.loads(str(tool["gen_ai.tool.call.result"]))["title"] == "buy milk"


async def test_the_callers_traceparent_is_the_requests_parent(database: Database) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {**auth(), "traceparent": f"00-{trace_id}-{parent_id}-01"}
    async with traced_client(database) as (client, exporter):
        answer = await client.post("/api/alice/chat", json={"message": "hi"}, headers=headers)
        assert answer.status_code == 200
        named = by_name(exporter.get_finished_spans())
    request, turn = only(named, CHAT), only(named, TURN)
    assert request.parent is not None and request.parent.is_remote
    assert f"{request.parent.span_id:016x}" == parent_id
    assert {f"{span.context.trace_id:032x}" for span in (request, turn)} == {trace_id}


async def test_a_failed_model_call_is_an_error_of_the_turn_and_the_call(database: Database) -> None:
    failing = SingleModelProvider(FaultyModel(after_deltas=1, error=connection_error()))
    async with traced_client(database, provider=failing) as (client, exporter):
        answer = await client.post("/api/alice/chat", json={"message": "hi"}, headers=auth())
        assert answer.status_code == 503, answer.text
        named = by_name(exporter.get_finished_spans())
    turn = only(named, TURN)
    assert turn.status.status_code is StatusCode.ERROR
    assert turn.attributes is not None and turn.attributes["error.type"] == "model"
    [chat] = named["chat offline"]
    assert chat.status.status_code is StatusCode.ERROR
    assert parent_of(chat) == turn.context.span_id


@contextmanager
def json_log_lines() -> Iterator[io.StringIO]:
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


async def test_log_lines_carry_the_trace_and_span_ids(database: Database) -> None:
    async with traced_client(database) as (client, exporter):
        with json_log_lines() as lines:
            answer = await client.post("/api/alice/chat", json={"message": "hi"}, headers=auth())
        assert answer.status_code == 200
        turn = only(by_name(exporter.get_finished_spans()), TURN)
    entries = [json.loads(line) for line in lines.getvalue().splitlines()]
    [finished] = [e for e in entries if e["message"].startswith("turn finished")]
    assert finished["trace_id"] == f"{turn.context.trace_id:032x}"
    assert finished["span_id"] == f"{turn.context.span_id:016x}"


async def test_without_otel_settings_nothing_is_configured(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(make_settings(database), database_schema=database.schema)
    assert not any("Tracing" in str(m.cls) for m in app.user_middleware)
    async with running(app), client_for(app) as client:
        with json_log_lines() as lines:
            answer = await client.post("/api/alice/chat", json={"message": "hi"}, headers=auth())
        assert answer.status_code == 200
        assert context_of(app).turns._tracer is NO_TRACER
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert all("trace_id" not in json.loads(line) for line in lines.getvalue().splitlines())


def test_only_an_endpoint_turns_tracing_on() -> None:
    assert Telemetry.from_environment({}) is None
    assert Telemetry.from_environment({"OTEL_SERVICE_NAME": "x"}) is None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    assert Telemetry.from_environment({**endpoint, "OTEL_SDK_DISABLED": "true"}) is None
    assert Telemetry.from_environment({**endpoint, "OTEL_TRACES_EXPORTER": "none"}) is None
    telemetry = Telemetry.from_environment({**endpoint, "OTEL_CAPTURE_CONTENT": "true"})
    assert telemetry is not None and telemetry.turns.capture_content
    telemetry.shutdown()
