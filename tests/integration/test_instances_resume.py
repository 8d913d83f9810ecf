"""Two instances on one Postgres and one Redis: a turn running on A can be followed and
resumed on B, from any Last-Event-ID, byte for byte what A streamed; a reader on B of a turn
whose instance dies gets an error event and a clean end within three heartbeats."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.instances import HEARTBEAT_SECONDS, cluster_env, instances
from tests.integration.processes import Server, cli_token
from tests.sse import CHATKIT_EVENT

pytestmark = pytest.mark.slow

WORDS = 40
MESSAGE = " ".join(f"w{i}" for i in range(WORDS))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    # Paced words: the turn is still running while B joins.
    with cluster_env(tmp_path, OFFLINE_DELAY_SECONDS="0.02") as env:
        yield env


def frames(body: str) -> list[str]:
    """The raw SSE events of a body, pings left out."""
    return [f for f in body.split("\r\n\r\n") if f and not f.startswith(":")]


def frame_id(frame: str) -> int:
    return int(frame.split("\r\n", 1)[0].removeprefix("id: "))


def frame_data(frame: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(frame.split("data: ", 1)[1])
    return data


def headers(token: str, last_event_id: int | None = None) -> dict[str, str]:
    sent = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    if last_event_id is not None:
        sent["Last-Event-ID"] = str(last_event_id)
    return sent


async def resume(server: Server, token: str, conversation_id: str, after: int) -> httpx.Response:
    url = f"{server.url}/api/alice/conversations/{conversation_id}/stream"
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url, headers=headers(token, after))


async def start_turn(
    server: Server, token: str, seen: asyncio.Queue[str], conversation_id: str | None = None
) -> tuple[asyncio.Task[str], str]:
    """Stream a turn from `server` (of a new conversation, or of `conversation_id`); the
    conversation's id once the first event is in, when the turn holds the conversation."""
    request = {"message": MESSAGE, "conversation_id": conversation_id}

    async def read() -> str:
        body = ""
        async with (
            httpx.AsyncClient(timeout=30) as client,
            client.stream(
                "POST",
                f"{server.url}/api/alice/chat",
                json=request,
                headers=headers(token),
            ) as response,
        ):
            assert response.status_code == 200
            async for text in response.aiter_text():
                body += text
                seen.put_nowait(body)
        return body

    task = asyncio.create_task(read())
    while True:
        so_far = await asyncio.wait_for(seen.get(), 30)
        if "\r\n\r\n" in so_far:
            if conversation_id is not None:
                return task, conversation_id
            created = frame_data(frames(so_far)[0])
            assert created["type"] == "thread.created"
            thread = created["thread"]
            assert isinstance(thread, dict)
            return task, str(thread["id"])


async def test_a_turn_on_a_is_followed_and_resumed_exactly_on_b(
    env: dict[str, str], tmp_path: Path
) -> None:
    with instances(env, tmp_path, 2) as (a, b):
        token = cli_token(env, tmp_path, "alice")
        task, conversation_id = await start_turn(a, token, asyncio.Queue())
        live = await resume(b, token, conversation_id, -1)  # joins while A is still running
        original = await task
        assert live.status_code == 200
        assert frames(live.text) == frames(original)  # followed live, the same bytes
        every = frames(original)
        assert len(every) > WORDS  # thread, items, a delta per word, the end
        for frame in every:
            CHATKIT_EVENT.validate_json(frame.split("data: ", 1)[1], strict=True)
        for after in (-1, 0, 3, len(every) // 2, len(every) - 2, len(every) - 1):
            again = await resume(b, token, conversation_id, after)
            assert again.status_code == 200
            assert frames(again.text) == [f for f in every if frame_id(f) > after]

        bob = cli_token(env, tmp_path, "bob")
        url = f"{b.url}/api/bob/conversations/{conversation_id}/stream"
        async with httpx.AsyncClient() as client:
            other = await client.get(url, headers=headers(bob, -1))
        assert other.status_code == 404  # another user's turn, on any instance


async def test_a_reader_on_b_gets_an_error_soon_after_a_dies(
    env: dict[str, str], tmp_path: Path
) -> None:
    slow = {**env, "OFFLINE_DELAY_SECONDS": "0.5"}  # 40 words: 20 s, far longer than the test
    with instances(slow, tmp_path, 2) as (a, b):
        token = cli_token(env, tmp_path, "alice")
        task, conversation_id = await start_turn(a, token, asyncio.Queue())
        follower = asyncio.create_task(resume(b, token, conversation_id, -1))
        await asyncio.sleep(0)  # let the follower connect
        a.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        response = await asyncio.wait_for(follower, 30)
        ended_after = time.monotonic() - killed_at
        task.cancel()
        assert response.status_code == 200
        last = frame_data(frames(response.text)[-1])
        assert last["type"] == "error", last
        assert "went away" in json.dumps(last)
        # Within three missed heartbeats (plus one blocked read and process start-up slack).
        assert ended_after < HEARTBEAT_SECONDS * 4 + 2
