"""Redis going away under two instances: turns keep running and are committed exactly once,
readers on the turn's own instance are unaffected, a resume elsewhere is a 503 with
Retry-After (never a hang), and everything works again once Redis is back."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.integration.instances import cluster_env, instances
from tests.integration.processes import cli_token, free_port
from tests.integration.test_instances_resume import WORDS, frames, resume, start_turn

pytestmark = pytest.mark.slow


class PrivateRedis:
    """A `redis-server` of the test's own, to kill and restart."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tmp_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            command, cwd=self._dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()


@pytest.fixture
def env(private_redis: PrivateRedis, tmp_path: Path) -> Iterator[dict[str, str]]:
    overrides = {"REDIS_URL": private_redis.url, "OFFLINE_DELAY_SECONDS": "0.02"}
    with cluster_env(tmp_path, **overrides) as env:
        yield env


async def messages(url: str, token: str, conversation_id: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{url}/api/alice/conversations/{conversation_id}/messages",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def test_redis_dying_mid_turn_loses_nothing_and_recovers(
    private_redis: PrivateRedis, env: dict[str, str], tmp_path: Path
) -> None:
    with instances(env, tmp_path, 2) as (a, b):
        token = cli_token(env, tmp_path, "alice")
        task, conversation_id = await start_turn(a, token, asyncio.Queue())
        private_redis.kill()
        body = await asyncio.wait_for(task, 30)  # A's own reader: the whole reply
        done = [f for f in frames(body) if '"thread.item.done"' in f and "assistant_message" in f]
        assert len(done) == 1 and len(frames(body)) > WORDS  # the whole reply, nothing else

        stored = await messages(a.url, token, conversation_id)
        assert [(m["role"], m["status"]) for m in stored] == [
            ("user", "completed"),
            ("assistant", "completed"),
        ]
        refused = await resume(b, token, conversation_id, -1)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "live events unavailable" in refused.json()["detail"]
        async with httpx.AsyncClient() as client:
            ready = (await client.get(f"{b.url}/readyz")).json()
            assert ready["status"] == "degraded"
            metrics = (await client.get(f"{a.url}/metrics")).text
        assert 'chatrelay_redis_errors_total{op="mirror"}' in metrics

        private_redis.start()  # empty: Redis keeps nothing of the earlier turn

        async with asyncio.timeout(20), httpx.AsyncClient() as client:
            # B's connection pool reconnects on its own: nothing to signal it but /readyz.
            while (await client.get(f"{b.url}/readyz")).json()["status"] != "ok":  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        task, second = await start_turn(a, token, asyncio.Queue())
        followed = await resume(b, token, second, -1)
        assert frames(followed.text) == frames(await task)
        assert len(await messages(b.url, token, second)) == 2
        assert len(await messages(b.url, token, conversation_id)) == 2  # exactly once
