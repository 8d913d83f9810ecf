"""The AI SDK's own client (`ai` from npm, tests/node/ai-sdk, installed by `make node`) against
a real `chatrelay serve`: `DefaultChatTransport` and `readUIMessageStream`, every chunk
checked with the SDK's `uiMessageChunkSchema`."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.processes import Server, cli_token, free_port, process_env

pytestmark = pytest.mark.slow

SUITE = Path(__file__).parents[1] / "node" / "ai-sdk"
LONG = " ".join(f"word{n}" for n in range(60))  # the offline model echoes it, word by word


@pytest.fixture(scope="module")
def node() -> str:
    program = shutil.which("node")
    if program is None or not (SUITE / "node_modules" / "ai").is_dir():
        pytest.fail("the Node suite is not installed: run `make node` (make test does)")
    return program


def _serve(cwd: Path, **settings: str) -> Iterator[tuple[Server, dict[str, str]]]:
    env = process_env(f"sqlite+aiosqlite:///{cwd / 'node.db'}", **settings)
    server = Server(env, cwd)
    try:
        yield server, env
    finally:
        server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    yield from _serve(tmp_path_factory.mktemp("node-ai-sdk"), OFFLINE_DELAY_SECONDS="0.03")


def run(node: str, server: Server, env: dict[str, str], *args: str, user: str = "alice") -> Any:
    token = cli_token(env, server.log.parent, user)
    client_env = {"CHATRELAY_URL": server.url, "CHATRELAY_TOKEN": token, "CHATRELAY_USER": user}
    done = subprocess.run(
        [node, "client.mjs", *args],
        cwd=SUITE,
        env={"PATH": "/usr/bin:/bin", **client_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def stored(server: Server, env: dict[str, str], chat_id: str) -> list[Any]:
    token = cli_token(env, server.log.parent, "alice")
    answer = httpx.get(
        f"{server.url}/ai-sdk/chat/{chat_id}/messages", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def _text(message: dict[str, Any]) -> str:
    return "".join(part["text"] for part in message["parts"] if part["type"] == "text")


def test_a_plain_turn(node: str, served: tuple[Server, dict[str, str]]) -> None:
    result = run(node, *served, "send", "node_plain", "hello there")
    assert result["invalid"] == []
    kinds = [chunk["type"] for chunk in result["chunks"]]
    assert kinds[:3] == ["start", "start-step", "text-start"]
    assert kinds[-2:] == ["finish-step", "finish"]
    message = result["message"]
    assert message["role"] == "assistant"
    assert _text(message).endswith("You said: hello there")
    history = stored(*served, "node_plain")
    assert [m["id"] for m in history][1] == message["id"]
    assert _text(history[1]) == _text(message)


def test_a_tool_turn(node: str, served: tuple[Server, dict[str, str]]) -> None:
    result = run(node, *served, "send", "node_tool", "add task: buy oat milk")
    assert result["invalid"] == []
    (tool,) = [part for part in result["message"]["parts"] if part["type"] == "dynamic-tool"]
    assert (tool["toolName"], tool["state"]) == ("add_task", "output-available")
    assert tool["input"]["title"] == "buy oat milk"
    assert "buy oat milk" in _text(result["message"])


def test_a_stop(node: str, served: tuple[Server, dict[str, str]]) -> None:
    result = run(node, *served, "stop", "node_stop", LONG)
    assert result["invalid"] == []
    assert result["cancel"]["status"] == 200
    assert result["cancel"]["body"]["status"] == "cancelled"
    assert result["chunks"][-1] == {"type": "finish", "finishReason": "interrupted"}
    history = stored(*served, "node_stop")
    assert _text(history[1]) == _text(result["message"])
    assert "word59" not in _text(history[1]), "stopped before the end"


def test_an_abort_is_not_a_stop(node: str, served: tuple[Server, dict[str, str]]) -> None:
    result = run(node, *served, "abort", "node_abort", LONG)
    assert result["chunks"][-1]["type"] == "text-delta"
    again = run(node, *served, "reconnect", "node_abort", "")  # read to the turn's end
    assert again["resumed"] and again["invalid"] == []
    assert again["chunks"][-1] == {"type": "finish", "finishReason": "stop"}
    history = stored(*served, "node_abort")
    assert (history[1]["id"], _text(history[1])) == (
        again["message"]["id"],
        _text(again["message"]),
    )
    assert _text(history[1]).endswith("word59"), "the turn ran on and committed in full"


def test_a_resume(node: str, served: tuple[Server, dict[str, str]]) -> None:
    result = run(node, *served, "resume", "node_resume", LONG)
    assert result["before"] is None, "204 before any turn: reconnectToStream gives null"
    assert result["invalid"] == []
    assert result["chunks"][0] == result["firstChunks"][0], "replayed from the start"
    assert result["chunks"][-1]["type"] == "finish"
    assert _text(result["message"]).endswith("word59")
    assert stored(*served, "node_resume")[1]["id"] == result["message"]["id"]


def test_a_model_error(node: str, tmp_path: Path) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/v1"
    settings = {"MODEL": "gpt-4o-mini", "OPENAI_BASE_URL": unreachable, "OPENAI_API_KEY": "sk-x"}
    for server, env in _serve(tmp_path, **settings):
        result = run(node, server, env, "send", "node_error", "hello")
        assert result["invalid"] == []
        (error,) = [chunk for chunk in result["chunks"] if chunk["type"] == "error"]
        assert "correlation id" in error["errorText"]
        assert result["chunks"][-1] == {"type": "finish", "finishReason": "error"}
