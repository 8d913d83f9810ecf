"""Several real `chatrelay serve` processes sharing one Postgres database and one Redis, as
instances behind a balancer do: a fresh database and a Redis key prefix of their own per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import redis
from bench.targets import postgres_database

from chatrelay.config import ENV_FILE_VARIABLE
from tests.conftest import POSTGRES_URL
from tests.integration.processes import SECRET, Server

REDIS_URL = os.environ.get("CHATRELAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HEARTBEAT_SECONDS = 0.5


def fresh_postgres_database() -> AbstractContextManager[str]:
    """A new, empty database on the test Postgres (the bench's own helper); its SQLAlchemy
    URL, dropped at the end."""
    return postgres_database(POSTGRES_URL)


def drop_keys(redis_url: str, prefix: str) -> None:
    """The test's keys, gone (a Redis the test killed holds none)."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.ConnectionError:
        pass
    finally:
        client.close()


@contextmanager
def cluster_env(tmp_path: Path, **overrides: str) -> Iterator[dict[str, str]]:
    """The environment every instance of one test shares."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    with fresh_postgres_database() as database_url:
        env = {
            **os.environ,
            "AUTH_SECRET": SECRET,
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": prefix,
            "INSTANCE_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "OPENAI_AGENTS_DISABLE_TRACING": "1",
            ENV_FILE_VARIABLE: os.devnull,
            **overrides,
        }
        try:
            yield env
        finally:
            drop_keys(env["REDIS_URL"], prefix)


@contextmanager
def instances(env: dict[str, str], cwd: Path, count: int) -> Iterator[list[Server]]:
    """`count` instances, started one after another (the first migrates), killed at the end."""
    started: list[Server] = []
    try:
        for _ in range(count):
            started.append(Server(env, cwd))
        yield started
    finally:
        for server in started:
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()
