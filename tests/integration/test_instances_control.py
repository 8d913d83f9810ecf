"""Two instances: a stop sent to B reaches the turn running on A (answered once the partial
reply is stored, as on one instance); one turn per conversation holds across them; and a
conversation whose instance was killed mid-turn is free again within three heartbeats, with
no lone user message left behind."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.instances import HEARTBEAT_SECONDS, cluster_env, instances
from tests.integration.processes import Server, cli_token
from tests.integration.test_instances_resume import MESSAGE, frame_data, frames, start_turn

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    # 40 words at 0.1 s: a 4 s reply, long enough to act on while it runs.
    with cluster_env(tmp_path, OFFLINE_DELAY_SECONDS="0.1") as env:
        yield env


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(server: Server, path: str, token: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(f"{server.url}{path}", json=body, headers=auth(token))


async def messages(server: Server, token: str, conversation_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        url = f"{server.url}/api/alice/conversations/{conversation_id}/messages"
        response = await client.get(url, headers=auth(token))
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def test_a_stop_on_b_stops_the_turn_running_on_a(env: dict[str, str], tmp_path: Path) -> None:
    with instances(env, tmp_path, 2) as (a, b):
        token = cli_token(env, tmp_path, "alice")
        bobs = cli_token(env, tmp_path, "bob")  # before the turn: a CLI run takes seconds
        task, conversation_id = await start_turn(a, token, asyncio.Queue())
        cancel = f"/api/alice/conversations/{conversation_id}/cancel"
        bob = await post(b, cancel.replace("alice", "bob"), bobs)
        assert bob.status_code == 404  # another user's turn, exactly like none at all

        stopped = await post(b, cancel, token)
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["status"] == "cancelled"
        body = await asyncio.wait_for(task, 30)  # A's stream ended early, with its final events
        assert all(frame_data(f)["type"] != "error" for f in frames(body))  # a stop, no error
        stored = await messages(b, token, conversation_id)
        assert [(m["role"], m["status"]) for m in stored] == [
            ("user", "completed"),
            ("assistant", "cancelled"),
        ]
        assert stored[1]["id"] == stopped.json()["message_id"]
        words = len(str(stored[1]["content"]).split())
        assert 0 < words < 40  # partial: stopped mid-reply

        again = await post(b, cancel, token)
        assert again.status_code == 409  # nothing runs any more, on either instance


async def busy_on_b(
    a: Server, b: Server, token: str
) -> tuple[str, asyncio.Task[str], httpx.Response]:
    """A conversation whose second turn runs on A, and B's answer to a turn in it meanwhile."""
    first = await post(a, "/api/alice/chat", token, {"message": "hi"})
    conversation_id = str(first.json()["conversation_id"])
    running, _ = await start_turn(a, token, asyncio.Queue(), conversation_id)
    busy = await post(b, "/api/alice/chat", token, follow_up(conversation_id, "me too"))
    assert busy.status_code == 409  # A's turn holds the conversation
    return conversation_id, running, busy


def follow_up(conversation_id: str, message: str) -> dict[str, str]:
    return {"message": message, "conversation_id": conversation_id}


async def test_one_turn_per_conversation_across_instances(
    env: dict[str, str], tmp_path: Path
) -> None:
    with instances(env, tmp_path, 2) as (a, b):
        token = cli_token(env, tmp_path, "alice")
        conversation_id, running, busy = await busy_on_b(a, b, token)
        assert busy.headers["retry-after"]
        assert frames(await running)
        stored = await messages(b, token, conversation_id)
        assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]


async def test_a_killed_instances_conversation_is_free_again_within_three_heartbeats(
    env: dict[str, str], tmp_path: Path
) -> None:
    with instances(env, tmp_path, 2) as (a, b):
        token = cli_token(env, tmp_path, "alice")
        conversation_id, stream, busy = await busy_on_b(a, b, token)
        a.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        with pytest.raises(httpx.TransportError):  # A's stream is cut
            await stream
        async with asyncio.timeout(HEARTBEAT_SECONDS * 3 + 5):
            while True:
                retry = await post(b, "/api/alice/chat", token, follow_up(conversation_id, "again"))
                if retry.status_code != 409:
                    break
                await asyncio.sleep(0.05)  # noqa: ASYNC110 - the heartbeat's expiry, unannounced
        freed_after = time.monotonic() - killed_at
        assert retry.status_code == 200, retry.text
        assert freed_after < HEARTBEAT_SECONDS * 3 + 2  # not TURN_LEASE_SECONDS (30)
        stored = await messages(b, token, conversation_id)
        # The killed turn left nothing: no lone user message; the retried one is whole.
        assert [(m["role"], m["content"]) for m in stored][2:] == [
            ("user", "again"),
            ("assistant", stored[3]["content"]),
        ]
        assert len(stored) == 4


@pytest.fixture
def limited_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with cluster_env(tmp_path, RATE_LIMIT="3/minute") as env:
        yield env


async def test_the_rate_limit_counts_a_users_turns_on_every_instance(
    limited_env: dict[str, str], tmp_path: Path
) -> None:
    with instances(limited_env, tmp_path, 2) as (a, b):
        token = cli_token(limited_env, tmp_path, "alice")
        answers = [
            (await post(server, "/api/alice/chat", token, {"message": "hi"})).status_code
            for server in (a, b, a, b)
        ]
        assert answers == [200, 200, 200, 429]  # 3 a minute in all, not 3 per instance
        other = await post(
            b, "/api/bob/chat", cli_token(limited_env, tmp_path, "bob"), {"message": "hi"}
        )
        assert other.status_code == 200  # per user


@pytest.fixture
def capped_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with cluster_env(tmp_path, MAX_STREAMS_PER_USER="4", OFFLINE_DELAY_SECONDS="0.1") as env:
        yield env


async def open_stream(server: Server, token: str) -> tuple[int, asyncio.Task[None] | None]:
    """A new conversation's stream: its status, and (when 200) the task reading it to the end."""
    client = httpx.AsyncClient(timeout=30)
    headers = {**auth(token), "Accept": "text/event-stream"}
    request = client.build_request(
        "POST", f"{server.url}/api/alice/chat", json={"message": MESSAGE}, headers=headers
    )
    response = await client.send(request, stream=True)
    if response.status_code != 200:
        await response.aclose()
        await client.aclose()
        return response.status_code, None

    async def drain() -> None:
        try:
            async for _ in response.aiter_bytes():
                pass
        except httpx.TransportError:
            pass  # its instance was killed
        finally:
            await response.aclose()
            await client.aclose()

    return 200, asyncio.create_task(drain())


async def test_a_users_streams_are_capped_across_instances(
    capped_env: dict[str, str], tmp_path: Path
) -> None:
    with instances(capped_env, tmp_path, 2) as (a, b):
        token = cli_token(capped_env, tmp_path, "alice")
        opened = await asyncio.gather(*(open_stream((a, b)[i % 2], token) for i in range(10)))
        statuses = sorted(status for status, _ in opened)
        assert statuses == [200] * 4 + [429] * 6  # 4 in all, not 4 per instance
        await asyncio.gather(*(task for _, task in opened if task is not None))
        status, task = await open_stream(b, token)  # the ended streams gave their slots back
        assert status == 200 and task is not None
        await task

        held = [await open_stream(a, token) for _ in range(4)]  # A holds all four
        assert [status for status, _ in held] == [200] * 4
        assert (await open_stream(b, token))[0] == 429
        a.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        async with asyncio.timeout(HEARTBEAT_SECONDS * 3 + 5):
            # The slots' expiry is announced by nothing: ask until B has one again.
            while (reopened := await open_stream(b, token))[0] == 429:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert time.monotonic() - killed_at < HEARTBEAT_SECONDS * 3 + 2
        ends = [task for _, task in (*held, reopened) if task is not None]
        assert len(ends) == 5
        await asyncio.gather(*ends)  # A's were cut, B's streams to its end
