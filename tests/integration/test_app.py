"""App-level behaviour: probes, CORS, OpenAPI, tracing."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from agents import set_tracing_disabled
from agents.tracing import Span, Trace, TracingProcessor, set_trace_processors

from chatrelay.agents import ChatrelayModelProvider
from chatrelay.agents.assistant import build_run_config
from chatrelay.config import Settings
from chatrelay.server import create_app
from chatrelay.tokens import mint_token
from tests.conftest import AppFactory, auth, client_for


async def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
        auth_secret="s" * 64,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), client_for(app) as client:
        live = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert live.status_code == 200
    assert ready.status_code == 503 and ready.headers["Retry-After"] == "1"
    assert ready.json()["detail"] == "database unreachable"


async def test_cors_allows_configured_origins_only(app_factory: AppFactory) -> None:
    app = await app_factory(cors_origins=["https://widget.example"])
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with client_for(app) as client:
        allowed = await client.options(
            "/api/alice/chat", headers={"Origin": "https://widget.example", **preflight}
        )
        refused = await client.options(
            "/api/alice/chat", headers={"Origin": "https://evil.example", **preflight}
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://widget.example"
    assert "access-control-allow-origin" not in refused.headers


async def test_openapi_documents_both_answers_with_examples(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/api/{user_id}/chat"]["post"]
    content = operation["responses"]["200"]["content"]
    assert {"application/json", "text/event-stream"} <= set(content)
    assert "thread.item.updated" in content["text/event-stream"]["example"]
    assert spec["components"]["schemas"]["ChatResponse"]["examples"]
    assert {"401", "403", "404", "406", "422", "500", "503"} <= set(operation["responses"])


def test_tracing_is_off_unless_configured() -> None:
    off = Settings(_env_file=None)  # type: ignore[call-arg]
    on = Settings(_env_file=None, tracing=True)  # type: ignore[call-arg]
    assert build_run_config(off, ChatrelayModelProvider(off)).tracing_disabled is True
    assert build_run_config(on, ChatrelayModelProvider(on)).tracing_disabled is False


async def test_chat_is_503_with_a_correlation_id_when_the_database_is_down() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
        auth_secret="s" * 64,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), client_for(app) as client:
        token = mint_token(settings, "alice")
        response = await client.post(
            "/api/alice/chat",
            json={"message": "hi", "conversation_id": "thr_1"},
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "db-down-1"},
        )
    assert response.status_code == 503
    assert response.json() == {
        "detail": "database unavailable, please retry",
        "correlation_id": "db-down-1",
    }


async def test_an_unexpected_error_is_500_with_a_logged_correlation_id(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: Starlette's catch-all ran after the request id was reset (`"-"`)."""
    app = await app_factory()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="chatrelay"):
        async with client_for(app) as client:
            response = await client.get("/boom", headers={"X-Request-ID": "corr-500"})

    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error", "correlation_id": "corr-500"}
    assert response.headers["x-request-id"] == "corr-500"
    assert any("corr-500" in record.getMessage() for record in caplog.records)


async def test_no_trace_is_recorded_unless_tracing_is_configured(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the SDK's own kill switch off, only our setting decides."""
    monkeypatch.delenv("OPENAI_AGENTS_DISABLE_TRACING", raising=False)
    recorder = RecordingProcessor()
    set_trace_processors([recorder])
    set_tracing_disabled(False)
    try:
        for tracing in (False, True):
            app = await app_factory(tracing=tracing)
            async with client_for(app) as client:
                response = await client.post(
                    "/api/alice/chat", json={"message": "hi"}, headers=auth()
                )
            assert response.status_code == 200
            assert bool(recorder.traces) is tracing
    finally:
        set_tracing_disabled(True)
        set_trace_processors([])  # nothing may ever export to OpenAI from the tests


class RecordingProcessor(TracingProcessor):
    def __init__(self) -> None:
        self.traces: list[Trace] = []

    def on_trace_start(self, trace: Trace) -> None:
        self.traces.append(trace)

    def on_trace_end(self, trace: Trace) -> None:
        pass

    def on_span_start(self, span: Span[Any]) -> None:
        pass

    def on_span_end(self, span: Span[Any]) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass
