"""App-level behaviour: probes, CORS, OpenAPI, tracing."""

from __future__ import annotations

import httpx

from chatrelay.agents import ChatrelayModelProvider
from chatrelay.agents.assistant import build_run_config
from chatrelay.config import Settings
from chatrelay.server import create_app
from tests.conftest import AppFactory, client_for


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
    assert ready.status_code == 503
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
