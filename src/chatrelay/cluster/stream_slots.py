"""A user's open streams counted across instances (`MAX_STREAMS_PER_USER` for all of them).

Per user, a sorted set of slot ids scored by when each expires: a slot is taken by one Lua
script (drop the expired, count, add if under the limit: atomic, so two instances cannot both
take the last slot), renewed by its instance every heartbeat, and removed when its stream
ends. The slots of an instance that dies expire with its heartbeat, three beats later.
When Redis cannot be asked, this instance's own count decides (`UserLimits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chatrelay.cluster.instances import MISSED_HEARTBEATS, redis_failed
from chatrelay.cluster.keys import Keys
from chatrelay.turns import Metrics

logger = logging.getLogger("chatrelay.cluster")

# KEYS[1] the user's set; ARGV: time to live (ms), the limit, the slot id. Redis's own clock,
# so instances' clocks never matter.
_ACQUIRE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now_ms + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""
# KEYS: the users' sets; ARGV[1] the time to live (ms), then per key the number of its slots
# followed by their ids. Renews only slots still there (XX): a released one stays released.
_RENEW = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ttl = tonumber(ARGV[1])
local at = 2
for i, key in ipairs(KEYS) do
  local count = tonumber(ARGV[at])
  for j = 1, count do
    redis.call('ZADD', key, 'XX', now_ms + ttl, ARGV[at + j])
  end
  redis.call('PEXPIRE', key, ttl)
  at = at + count + 1
end
return 1
"""


class RedisStreamSlots:
    def __init__(
        self, client: Redis, keys: Keys, heartbeat_seconds: float, metrics: Metrics | None = None
    ) -> None:
        self._client = client
        self._keys = keys
        self._heartbeat = heartbeat_seconds
        self._ttl_ms = max(1, int(heartbeat_seconds * MISSED_HEARTBEATS * 1000))
        self._metrics = metrics
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._held: dict[str, set[str]] = defaultdict(set)
        """This instance's slots, by user: what it renews."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._renewer: asyncio.Task[None] | None = None

    def _failed(self, op: str, exc: BaseException) -> None:
        redis_failed(self._metrics, op, exc)

    async def acquire(self, user_id: str, limit: int) -> str | None | bool:
        slot_id = secrets.token_hex(8)
        try:
            taken = await self._acquire(
                keys=[self._keys.streams(user_id)], args=[self._ttl_ms, limit, slot_id]
            )
        except (RedisError, OSError) as exc:
            self._failed("stream_slots", exc)
            return None
        if not taken:
            return False
        self._held[user_id].add(slot_id)
        return slot_id

    def release(self, user_id: str, slot_id: str) -> None:
        held = self._held.get(user_id)
        if held is not None:
            held.discard(slot_id)
            if not held:
                del self._held[user_id]
        task = asyncio.get_running_loop().create_task(self._remove(user_id, slot_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _remove(self, user_id: str, slot_id: str) -> None:
        try:
            await self._client.zrem(self._keys.streams(user_id), slot_id)
        except (RedisError, OSError) as exc:  # it expires within three heartbeats anyway
            self._failed("stream_slots", exc)

    def start(self) -> None:
        self._renewer = asyncio.create_task(self._renew_forever(), name="stream-slots")

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            if not self._held:
                continue
            keys: list[str] = []
            args: list[str | int] = [self._ttl_ms]
            for user_id, slots in self._held.items():
                keys.append(self._keys.streams(user_id))
                args += [len(slots), *slots]
            try:
                await self._renew(keys=keys, args=args)
            except (RedisError, OSError) as exc:
                self._failed("stream_slots", exc)

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        while self._tasks:
            await asyncio.wait(set(self._tasks))
