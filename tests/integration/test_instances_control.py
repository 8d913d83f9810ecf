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
from tests.integration.test_instances_resume import frame_data, frames, start_turn

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
        task, conversation_id = await start_turn(a, token, asyncio.Queue())
        cancel = f"/api/alice/conversations/{conversation_id}/cancel"
        bob = await post(b, cancel.replace("alice", "bob"), cli_token(env, tmp_path, "bob"))
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


async def test_one_turn_per_conversation_across_instances(
    env: dict[str, str], tmp_path: Path
) -> None:
    with instances(env, tmp_path, 2) as (a, b):
        token = cli_token(env, tmp_path, "alice")
        first = await post(a, "/api/alice/chat", token, {"message": "hi"})
        conversation_id = first.json()["conversation_id"]
        follow_up = {
            "message": " ".join(f"w{i}" for i in range(40)),
            "conversation_id": conversation_id,
        }
        running, _ = await start_turn(a, token, asyncio.Queue(), conversation_id)
        busy = await post(b, "/api/alice/chat", token, {**follow_up, "message": "me too"})
        assert busy.status_code == 409  # A's turn holds the conversation
        assert busy.headers["retry-after"]
        assert frames(await running)
        stored = await messages(b, token, conversation_id)
        assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]


async def test_a_killed_instances_conversation_is_free_again_within_three_heartbeats(
    env: dict[str, str], tmp_path: Path
) -> None:
    with instances(env, tmp_path, 2) as (a, b):
        token = cli_token(env, tmp_path, "alice")
        first = await post(a, "/api/alice/chat", token, {"message": "hi"})
        conversation_id = first.json()["conversation_id"]
        follow_up = {
            "message": " ".join(f"w{i}" for i in range(40)),
            "conversation_id": conversation_id,
        }
        stream, _ = await start_turn(a, token, asyncio.Queue(), conversation_id)
        busy = await post(b, "/api/alice/chat", token, {**follow_up, "message": "x"})
        assert busy.status_code == 409  # A's turn holds the conversation
        a.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        with pytest.raises(httpx.TransportError):  # A's stream is cut
            await stream
        async with asyncio.timeout(HEARTBEAT_SECONDS * 3 + 5):
            while True:
                retry = await post(b, "/api/alice/chat", token, {**follow_up, "message": "again"})
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
