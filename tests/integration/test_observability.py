"""Prometheus metrics and structured JSON logs."""

from __future__ import annotations

import io
import json
import logging

from prometheus_client.parser import text_string_to_metric_families

from chatrelay.logs import JsonFormatter
from tests.conftest import AppFactory, auth, client_for
from tests.fakes.models import FaultyModel, SingleModelProvider, connection_error


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_turns_tools_errors_and_latency(app_factory: AppFactory) -> None:
    app = await app_factory()
    failing = await app_factory(SingleModelProvider(FaultyModel(error=connection_error())))
    async with client_for(app) as client, client_for(failing) as broken:
        await client.post("/api/alice/chat", json={"message": "hello"}, headers=auth())
        await client.post("/api/alice/chat", json={"message": "add task milk"}, headers=auth())
        await broken.post("/api/alice/chat", json={"message": "hello"}, headers=auth())
        ok_metrics = await client.get("/metrics")
        failed_metrics = await broken.get("/metrics")

    assert ok_metrics.headers["content-type"].startswith("text/plain")
    ok, failed = _samples(ok_metrics.text), _samples(failed_metrics.text)
    assert ok[("chatrelay_turns_total", (("outcome", "completed"),))] == 2
    assert ok[("chatrelay_tool_calls_total", (("tool", "add_task"),))] == 1
    assert ok[("chatrelay_time_to_first_token_seconds_count", ())] == 2
    assert ok[("chatrelay_turn_duration_seconds_count", ())] == 2
    assert ok[("chatrelay_active_streams", ())] == 0
    assert failed[("chatrelay_turns_total", (("outcome", "model"),))] == 1
    assert failed[("chatrelay_turn_errors_total", (("kind", "model"),))] == 1


async def test_a_turn_logs_one_json_line_with_its_ids(app_factory: AppFactory) -> None:
    app = await app_factory()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("chatrelay.turns")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        async with client_for(app) as client:
            reply = await client.post(
                "/api/alice/chat",
                json={"message": "log me"},
                headers={**auth(), "X-Request-ID": "req-log-1"},
            )
    finally:
        logger.removeHandler(handler)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [finished] = [line for line in lines if line["message"].startswith("turn finished")]
    assert finished["request_id"] == finished["correlation_id"] == "req-log-1"
    assert finished["user_id"] == "alice"
    assert finished["conversation_id"] == reply.json()["conversation_id"]
    assert finished["outcome"] == "completed"
    assert finished["status"] == "completed"
    assert finished["level"] == "info"
    assert finished["duration_ms"] >= 0
