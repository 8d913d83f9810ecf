"""End to end through real processes: what a newcomer does after `make run`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from tests.integration.processes import CLI, cli_token, free_port
from tests.sse import CHATKIT_EVENT

pytestmark = pytest.mark.slow


def test_stream_json_and_history_across_a_restart(
    serve, env: dict[str, str], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    headers = {"Authorization": f"Bearer {cli_token(env, tmp_path, 'alice')}"}

    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        with connect_sse(client, "POST", "/api/alice/chat", json={"message": "Hello there"}) as sse:
            assert sse.response.headers["content-type"].startswith("text/event-stream")
            events = [(event.id, json.loads(event.data)) for event in sse.iter_sse()]
        for _, data in events:
            CHATKIT_EVENT.validate_python(data)
        assert events[0][1]["type"] == "thread.created"
        assert [data["type"] for _, data in events[-2:]] == ["thread.item.done", "thread.updated"]
        conversation_id = events[0][1]["thread"]["id"]

        reply = client.post(
            "/api/alice/chat", json={"message": "two words", "conversation_id": conversation_id}
        )
        assert reply.status_code == 200
        tokens_before_restart = reply.json()["usage"]["input_tokens"]
    server.stop()

    restarted = serve()
    with httpx.Client(base_url=restarted.url, headers=headers, timeout=30) as client:
        after = client.post(
            "/api/alice/chat",
            json={"message": "three more words", "conversation_id": conversation_id},
        )
    assert after.status_code == 200
    # The offline model counts every input word: the history came back from the database.
    assert after.json()["usage"]["input_tokens"] > tokens_before_restart + 3


def test_token_refuses_without_a_secret(env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in env.items() if k not in ("AUTH_SECRET", "BETTER_AUTH_SECRET")}
    result = subprocess.run(
        [CLI, "token", "alice"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "AUTH_SECRET" in result.stderr


def test_production_refuses_to_start_with_a_short_secret(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "ENV": "production", "AUTH_SECRET": "too-short"}
    result = subprocess.run(
        [CLI, "serve", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "AUTH_SECRET" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_migrate_creates_the_schema(env: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run([CLI, "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / "e2e.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"conversations", "messages", "alembic_version"} <= tables


def test_serve_without_migrate_on_start_refuses_a_schema_behind_in_one_line(
    serve, env: dict[str, str], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    env["MIGRATE_ON_START"] = "false"  # `serve` starts its servers with this very dict
    refused = subprocess.run(
        [CLI, "serve", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    [line] = refused.stderr.splitlines()  # one line, no traceback
    assert line.startswith("chatrelay: error: serve: the database schema is at no revision")
    assert "run `chatrelay migrate`" in line

    migrated = subprocess.run([CLI, "migrate"], env=env, cwd=tmp_path, capture_output=True)
    assert migrated.returncode == 0, migrated.stderr
    serve().stop()  # at head: it starts, and /readyz says 200
