"""Request ids claimed across instances, so a repeat that lands on another instance than the
first request follows the turn running there instead of running the model again.

The first request sets the id's key to its turn (before the turn starts; a Lua script, so two
instances cannot both take it) and deletes it once the turn is settled, its reply committed.
A repeat elsewhere reads the key and follows that turn's stream (`RedisTurnBuffer`) from its
first event; a claim whose instance is gone is taken over. A Redis that cannot be asked lets
the request run: the store's unique index still keeps an existing conversation's pair single.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chatrelay.cluster.instances import Instances, redis_failed
from chatrelay.cluster.keys import Keys
from chatrelay.cluster.streams import RedisTurnBuffer
from chatrelay.turns import Batch, Metrics, RequestKey, WireFormat
from chatrelay.turns.claims import Elsewhere, TurnNames

T = TypeVar("T")

# KEYS[1] the request's key; ARGV: our claim, the claim we may replace ('' for none), its time
# to live (ms). Returns the claim that holds the key, or nil once ours does.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[2] then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return false
"""
# KEYS[1] the request's key; ARGV[1] our claim: deleted only while it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisRequestClaims:
    def __init__(
        self,
        client: Redis,
        keys: Keys,
        instances: Instances,
        buffer: RedisTurnBuffer,
        ttl_seconds: int,
        metrics: Metrics | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._instances = instances
        self._buffer = buffer
        self._ttl_ms = ttl_seconds * 1000
        self._metrics = metrics
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    def _ours(self, names: TurnNames) -> str:
        conversation_id, turn_id = names
        return json.dumps(
            {"conversation": conversation_id, "turn": turn_id, "instance": self._instances.id}
        )

    async def claim(self, key: RequestKey, turn: TurnNames) -> Elsewhere | None:
        redis_key, ours = self._keys.request(key), self._ours(turn)
        try:
            held = await self._claim(keys=[redis_key], args=[ours, "", self._ttl_ms])
            if held is None:
                return None
            holder = cast(dict[str, Any], json.loads(held))
            # Ours (a claim whose release failed: this instance's turns are in its own
            # claims) or a gone instance's: take it over, unless another taker was first.
            if holder["instance"] != self._instances.id and await self._instances.alive(
                holder["instance"]
            ):
                return Elsewhere(holder["conversation"], holder["turn"], holder["instance"])
            if await self._claim(keys=[redis_key], args=[ours, held, self._ttl_ms]) is None:
                return None
            return await self.claim(key, turn)  # someone else took it over just now
        except (RedisError, OSError, ValueError, KeyError, TypeError) as exc:
            redis_failed(self._metrics, "claim", exc)
            return None

    async def release(self, key: RequestKey, turn: TurnNames) -> None:
        try:
            await self._release(keys=[self._keys.request(key)], args=[self._ours(turn)])
        except (RedisError, OSError) as exc:
            redis_failed(self._metrics, "release", exc)  # it expires on its own

    async def follow(
        self, elsewhere: Elsewhere, wire_format: WireFormat[T]
    ) -> AsyncIterator[Batch[T]] | None:
        return await self._buffer.follow_turn(elsewhere.turn_id, elsewhere.instance_id, wire_format)
