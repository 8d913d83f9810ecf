"""Which instances are alive: each sets its own key every heartbeat, with a time to live of
three heartbeats, so one that dies (or hangs) is gone within three."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chatrelay.cluster.keys import Keys
from chatrelay.turns import Metrics

logger = logging.getLogger("chatrelay.cluster")

MISSED_HEARTBEATS = 3


def redis_failed(metrics: Metrics | None, op: str, exc: BaseException) -> None:
    """Log a failed Redis operation and count it (`chatrelay_redis_errors_total{op}`)."""
    if metrics is not None:
        metrics.shared_state_errors.labels(op).inc()
    logger.warning("redis %s failed: %s: %s", op, type(exc).__name__, exc)


class Instances:
    def __init__(
        self, client: Redis, keys: Keys, heartbeat_seconds: float, instance_id: str | None = None
    ) -> None:
        self.id = instance_id or secrets.token_hex(8)
        self._client = client
        self._keys = keys
        self._heartbeat = heartbeat_seconds
        self._task: asyncio.Task[None] | None = None

    @property
    def heartbeat_seconds(self) -> float:
        return self._heartbeat

    async def beat(self) -> None:
        ttl_ms = max(1, int(self._heartbeat * MISSED_HEARTBEATS * 1000))
        await self._client.set(self._keys.instance(self.id), "1", px=ttl_ms)

    def start(self) -> None:
        """Heartbeat in the background until `close` (a Redis that is down is retried)."""
        self._task = asyncio.create_task(self._beat_forever(), name=f"heartbeat:{self.id}")

    async def _beat_forever(self) -> None:
        failing = False
        while True:
            try:
                await self.beat()
                if failing:
                    logger.info("heartbeat: Redis is reachable again")
                failing = False
            except (RedisError, OSError) as exc:
                if not failing:
                    logger.warning("heartbeat: Redis unreachable: %s", exc)
                failing = True
            await asyncio.sleep(self._heartbeat)

    async def alive(self, instance_id: str) -> bool:
        return instance_id == self.id or bool(
            await self._client.exists(self._keys.instance(instance_id))
        )

    async def close(self) -> None:
        """Stop beating and say so at once (readers elsewhere need not wait out the TTL)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self._client.delete(self._keys.instance(self.id))
