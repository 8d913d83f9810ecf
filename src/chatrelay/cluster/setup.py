"""The shared state of several instances, opened from the settings (`REDIS_URL`)."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chatrelay.cluster.claims import RedisRequestClaims
from chatrelay.cluster.instances import Instances
from chatrelay.cluster.keys import Keys
from chatrelay.cluster.remote import RedisRemoteTurns
from chatrelay.cluster.stream_slots import RedisStreamSlots
from chatrelay.cluster.streams import RedisTurnBuffer, StreamTerms
from chatrelay.config import Settings
from chatrelay.turns import Metrics, TurnRegistry, UserLimits

logger = logging.getLogger("chatrelay.cluster")

CONNECT_TIMEOUT_SECONDS = 2.0


@dataclass
class Cluster:
    client: Redis
    keys: Keys
    instances: Instances
    buffer: RedisTurnBuffer
    remote: RedisRemoteTurns
    claims: RedisRequestClaims

    async def reachable(self) -> bool:
        """For `/readyz`: Redis answers (an instance without it is degraded, not down)."""
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False


@contextlib.asynccontextmanager
async def open_cluster(
    settings: Settings,
    registry: TurnRegistry,
    limits: UserLimits,
    metrics: Metrics,
    redis_url: str,
) -> AsyncIterator[Cluster]:
    """Connect (lazily: a Redis that is down at start is retried, never fatal), heartbeat,
    mirror turns, hear stops, count stream slots; on exit, wait for the mirrors, stop
    beating, close."""
    heartbeat = settings.instance_heartbeat_seconds
    client = Redis.from_url(
        redis_url,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        # Longer than the longest XREAD BLOCK (one heartbeat), so a wait is not an error.
        socket_timeout=heartbeat + 5.0,
        health_check_interval=30,
    )
    keys = Keys(settings.redis_prefix)
    instances = Instances(client, keys, heartbeat)
    resume = max(1, math.ceil(settings.resume_seconds))
    terms = StreamTerms(
        ttl_seconds=resume,
        running_ttl_seconds=resume + math.ceil(settings.turn_timeout_seconds),
        max_events=settings.resume_max_events,
        mirror_interval=settings.redis_mirror_interval_seconds,
    )
    buffer = RedisTurnBuffer(client, keys, registry, instances, terms, metrics)
    remote = RedisRemoteTurns(client, keys, registry, instances, metrics)
    claims = RedisRequestClaims(client, keys, instances, buffer, terms.running_ttl_seconds, metrics)
    slots = RedisStreamSlots(client, keys, heartbeat, metrics)
    instances.start()
    remote.start()
    slots.start()
    limits.shared = slots
    logger.info("sharing live turns through Redis as instance %s", instances.id)
    try:
        yield Cluster(client, keys, instances, buffer, remote, claims)
    finally:
        limits.shared = None
        await slots.close()
        await remote.close()
        await buffer.close()
        await instances.close()
        await client.aclose()
