"""Real processes, real signals: SIGTERM with a turn in flight, SIGKILL and a restart."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.processes import Server, cli_token

pytestmark = pytest.mark.slow

LONG_MESSAGE = " ".join(f"word{i}" for i in range(120))


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def _start(servers: list[Server], env: dict[str, str], cwd: Path, **overrides: str) -> Server:
    server = Server({**env, **overrides}, cwd)
    servers.append(server)
    return server


def _stream_then_signal(
    server: Server, token: str, sig: signal.Signals, body: dict[str, str]
) -> int:
    """Stream a turn; after a few deltas, send `sig` to the server. Returns deltas seen."""
    deltas = 0
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    try:
        with httpx.stream(
            "POST", f"{server.url}/api/alice/chat", json=body, headers=headers, timeout=30
        ) as response:
            for line in response.iter_lines():
                if "text_delta" in line:
                    deltas += 1
                    if deltas == 5:
                        server.process.send_signal(sig)
    except httpx.HTTPError:
        pass  # the server went away mid-stream: expected for SIGKILL
    return deltas


def _messages(database: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(database) as db:
        return db.execute(
            "SELECT conversation_id, role, status, content FROM messages ORDER BY created_at"
        ).fetchall()


def test_sigterm_lets_a_running_turn_finish_and_commits_it(
    servers: list[Server], env: dict[str, str], tmp_path: Path
) -> None:
    server = _start(servers, env, tmp_path, OFFLINE_DELAY_SECONDS="0.01")
    _stream_then_signal(
        server, cli_token(env, tmp_path, "alice"), signal.SIGTERM, {"message": LONG_MESSAGE}
    )
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)

    stored = _messages(tmp_path / "e2e.db")
    assert [(role, status) for _, role, status, _ in stored] == [
        ("user", "completed"),
        ("assistant", "completed"),
    ]
    assert stored[1][3].endswith("word119")  # the whole reply (and stream: test_drain.py)


def test_sigterm_past_the_grace_period_stops_and_keeps_the_partial_reply(
    servers: list[Server], env: dict[str, str], tmp_path: Path
) -> None:
    server = _start(
        servers, env, tmp_path, OFFLINE_DELAY_SECONDS="0.05", SHUTDOWN_GRACE_SECONDS="0.5"
    )
    _stream_then_signal(
        server, cli_token(env, tmp_path, "alice"), signal.SIGTERM, {"message": LONG_MESSAGE}
    )
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)

    stored = _messages(tmp_path / "e2e.db")
    assert [(role, status) for _, role, status, _ in stored] == [
        ("user", "completed"),
        ("assistant", "incomplete"),
    ]
    assert 5 <= len(stored[1][3].split()) < 120


def test_sigkill_mid_stream_leaves_no_lone_user_message(
    servers: list[Server], env: dict[str, str], tmp_path: Path
) -> None:
    server = _start(servers, env, tmp_path, OFFLINE_DELAY_SECONDS="0.05", TURN_LEASE_SECONDS="1")
    token = cli_token(env, tmp_path, "alice")
    headers = {"Authorization": f"Bearer {token}"}
    first = httpx.post(
        f"{server.url}/api/alice/chat", json={"message": "hi"}, headers=headers, timeout=30
    )
    conversation_id = first.json()["conversation_id"]

    _stream_then_signal(
        server, token, signal.SIGKILL, {"message": LONG_MESSAGE, "conversation_id": conversation_id}
    )
    assert server.process.wait(timeout=30) == -signal.SIGKILL

    # Documented: a killed turn leaves nothing at all (the pair is written only at its end).
    assert [(role, status) for _, role, status, _ in _messages(tmp_path / "e2e.db")] == [
        ("user", "completed"),
        ("assistant", "completed"),
    ]
    restarted = _start(servers, env, tmp_path, TURN_LEASE_SECONDS="1")
    time.sleep(1.2)  # the dead process's lease on the conversation expires
    again = httpx.post(
        f"{restarted.url}/api/alice/chat",
        json={"message": "still here?", "conversation_id": conversation_id},
        headers=headers,
        timeout=30,
    )
    assert again.status_code == 200
    assert len(_messages(tmp_path / "e2e.db")) == 4
