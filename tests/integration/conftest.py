"""Fixtures for the process-level tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatrelay.config import ENV_FILE_VARIABLE
from tests.integration.processes import SECRET, Server


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
