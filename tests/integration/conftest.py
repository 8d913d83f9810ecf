"""Fixtures for the process-level tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from chatrelay.config import ENV_FILE_VARIABLE
from tests.conftest import POSTGRES_URL
from tests.integration.processes import SECRET, Server, postgres_database, process_env


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AUTH_SECRET": SECRET,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}",
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
        ENV_FILE_VARIABLE: os.devnull,  # not the checkout's .env
    }


@pytest.fixture
def serve(env: dict[str, str], tmp_path: Path) -> Iterator[type[Server]]:
    started: list[Server] = []

    def start() -> Server:
        server = Server(env, tmp_path)
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


WS_SETTINGS = {
    "OFFLINE_DELAY_SECONDS": "0.01",  # turns long enough to act on mid-way
    "WS_AUTH_TIMEOUT_SECONDS": "1",
    "WS_PING_SECONDS": "1",
    "WS_PING_TIMEOUT_SECONDS": "2",
    "RATE_LIMIT": "100000/minute",
}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def ws_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One `chatrelay serve` per module and backend (tests keep apart by user name)."""
    cwd = tmp_path_factory.mktemp("ws")
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{cwd / 'ws.db'}"
        else:
            url = stack.enter_context(postgres_database(POSTGRES_URL))
        server = Server(process_env(url, **WS_SETTINGS), cwd)
        try:
            yield server
        finally:
            server.stop()
