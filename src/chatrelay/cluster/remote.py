"""Turns running on other instances: a stop published to every instance (Redis pub/sub)
reaches the one running the turn, which stops it as its own cancel endpoint would; the
stopper follows the turn's stream until its end event, which carries the outcome. And a
conversation whose turn's instance is gone is free at once (`orphaned`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chatrelay.cluster.instances import Instances, redis_failed
from chatrelay.cluster.keys import Keys
from chatrelay.cluster.streams import events_of, read_owner
from chatrelay.turns import (
    Conflict,
    LiveEventsUnavailable,
    Metrics,
    TurnEnded,
    TurnOutcome,
    TurnRegistry,
)

logger = logging.getLogger("chatrelay.cluster")

RESUBSCRIBE_SECONDS = 1.0
NOTHING_RUNS = "no turn is running in this conversation"


class RedisRemoteTurns:
    def __init__(
        self,
        client: Redis,
        keys: Keys,
        registry: TurnRegistry,
        instances: Instances,
        metrics: Metrics | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._registry = registry
        self._instances = instances
        self._metrics = metrics
        self._listener: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        """Set while this instance receives stops (tests wait on it)."""

    def _failed(self, op: str, exc: BaseException) -> None:
        redis_failed(self._metrics, op, exc)

    # -- receiving stops -----------------------------------------------------------------

    def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="stops")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    async def _listen(self) -> None:
        while True:
            try:
                async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._keys.stops)
                    self.subscribed.set()
                    async for message in pubsub.listen():
                        self._received(message.get("data"))
            except (RedisError, OSError) as exc:
                self._failed("stops", exc)
            self.subscribed.clear()
            await asyncio.sleep(RESUBSCRIBE_SECONDS)

    def _received(self, data: object) -> None:
        try:
            stop = json.loads(cast(str, data))
            conversation_id, turn_id = str(stop["conversation"]), str(stop["turn"])
        except (TypeError, ValueError, KeyError):
            logger.warning("ignored a malformed stop: %r", data)
            return
        turn = self._registry.running_turn(conversation_id)
        if turn is not None and turn.spec.assistant_message_id == turn_id:
            logger.info("stopping %s at another instance's request", conversation_id)
            self._registry.stop(conversation_id)

    # -- sending them --------------------------------------------------------------------

    async def stop(
        self, conversation_id: str, user_id: str, *, wait_seconds: float
    ) -> TurnOutcome | None:
        try:
            owner = await read_owner(self._client, self._keys, conversation_id)
            if owner is None or owner["user"] != user_id or owner["instance"] == self._instances.id:
                raise Conflict(NOTHING_RUNS)  # a turn of this instance would be in its registry
            stream = self._keys.turn(owner["turn"])
            last: Any = await self._client.xrevrange(stream, "+", "-", count=1)
            if last and _ended(last[0][1]) is not None:
                raise Conflict(NOTHING_RUNS)  # (no entry yet: it has just started)
            if not await self._instances.alive(owner["instance"]):
                raise Conflict(NOTHING_RUNS)  # gone: its conversation is free (`orphaned`)
            message = {"conversation": conversation_id, "turn": owner["turn"]}
            await self._client.publish(self._keys.stops, json.dumps(message))
            return await self._outcome(stream, last[0][0] if last else "0-0", wait_seconds)
        except (RedisError, OSError) as exc:
            self._failed("stop", exc)
            raise LiveEventsUnavailable("live turns unavailable, please retry") from exc

    async def _outcome(self, stream: str, after: str, wait_seconds: float) -> TurnOutcome | None:
        """The turn's outcome from its end event, once the owner has committed it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while (left := deadline - loop.time()) > 0:
            read: Any = await self._client.xread(
                {stream: after}, count=1000, block=max(1, int(left * 1000))
            )
            for entry_id, fields in read[0][1] if read else ():
                after = entry_id
                if (outcome := _ended(fields)) is not None:
                    return outcome
        return None

    async def orphaned(self, conversation_id: str) -> str | None:
        try:
            owner = await read_owner(self._client, self._keys, conversation_id)
            if owner is None or await self._instances.alive(owner["instance"]):
                return None
        except (RedisError, OSError) as exc:
            self._failed("orphaned", exc)
            return None  # the lease expires on its own
        logger.info("taking over %s: its instance %s is gone", conversation_id, owner["instance"])
        return str(owner["turn"])


def _ended(fields: dict[str, str]) -> TurnOutcome | None:
    _, events = events_of(fields)
    return events[-1].outcome if events and isinstance(events[-1], TurnEnded) else None
