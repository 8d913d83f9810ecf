"""Each turn's typed events in a Redis Stream, so any instance can follow or resume it.

The instance running a turn mirrors its log: one pipelined round trip per write batch of
the log (never one per token: once text streams, at most one per
REDIS_MIRROR_INTERVAL_SECONDS), entry `n+1-0` holding event `n` as `chatrelay.turns.codec`
JSON. Readers there keep reading the log itself; a reader on any other instance follows the
stream (XREAD BLOCK) and encodes the events with its own format's encoder, so it gets the
same items with the same ids, byte for byte. A reader whose turn's instance stops beating
(see `Instances`) gets the format's error and a clean end.

The conversation's key names its latest turn, so a resume finds it; both expire
`RESUME_SECONDS` after the turn ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from chatrelay.cluster.instances import Instances, redis_failed
from chatrelay.cluster.keys import Keys
from chatrelay.turns import (
    TURN_EVENTS,
    Batch,
    Failure,
    InProcessTurnBuffer,
    LiveEventsUnavailable,
    Metrics,
    Turn,
    TurnEnded,
    TurnEvent,
    TurnFailed,
    TurnRegistry,
    TurnSpec,
    WireFormat,
)
from chatrelay.turns.codec import from_dict, to_dict

logger = logging.getLogger("chatrelay.cluster")

T = TypeVar("T")
Entries = Sequence[tuple[str, dict[str, str]]]
READ_COUNT = 1000
POINT_TIMEOUT_SECONDS = 0.25
FINAL_RETRIES = (0.1, 0.3, 1.0, 3.0)
"""Waits between the last attempts to mirror a turn's final events while Redis is away."""


@dataclass(frozen=True)
class StreamTerms:
    ttl_seconds: int
    """Time to live of a finished turn's keys (RESUME_SECONDS)."""
    running_ttl_seconds: int
    """... and of a running one's: its whole time to run on top."""
    max_events: int
    mirror_interval: float = 0.0
    """Once a turn's text streams, one write per this long at most (the setting
    REDIS_MIRROR_INTERVAL_SECONDS)."""


class Unreadable(Exception):
    """The stream has a gap (trimmed, or Redis lost it): it cannot be encoded exactly."""


def entry_of(events: list[tuple[int, TurnEvent]]) -> dict[str, str]:
    """One stream entry for a write batch: its first event's number and the events."""
    data = [to_dict(event) for _, event in events]
    return {"first": str(events[0][0]), "events": json.dumps(data, separators=(",", ":"))}


def events_of(fields: dict[str, str]) -> tuple[int, list[TurnEvent]]:
    """An entry's first event number and its events (`entry_of` reversed)."""
    return int(fields["first"]), [from_dict(data) for data in json.loads(fields["events"])]


def owner_record(spec: TurnSpec, instance_id: str) -> str:
    """What the conversation's key says of its latest turn: the turn, its user, its instance."""
    return json.dumps(
        {"turn": spec.assistant_message_id, "user": spec.user_id, "instance": instance_id}
    )


async def read_owner(client: Redis, keys: Keys, conversation_id: str) -> dict[str, Any] | None:
    """The conversation's `owner_record`, None when no turn of it is kept."""
    found = await client.get(keys.conversation(conversation_id))
    return None if found is None else cast(dict[str, Any], json.loads(found))


class RedisTurnBuffer:
    def __init__(
        self,
        client: Redis,
        keys: Keys,
        registry: TurnRegistry,
        instances: Instances,
        terms: StreamTerms,
        metrics: Metrics | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._local = InProcessTurnBuffer(registry)
        self._instances = instances
        self._terms = terms
        self._metrics = metrics
        self._mirrors: set[asyncio.Task[None]] = set()

    def _failed(self, op: str, exc: BaseException) -> None:
        redis_failed(self._metrics, op, exc)

    # -- the owning instance -------------------------------------------------------------

    async def track(self, turn: Turn) -> None:
        """Name the turn as its conversation's latest before it starts, so before its first
        event can reach a client (a stop or a resume elsewhere right after must find it),
        then mirror it."""
        pointed = await self._point(turn)
        task = asyncio.create_task(
            self._mirror(turn, pointed), name=f"mirror:{turn.spec.conversation_id}"
        )
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)

    async def _point(self, turn: Turn) -> bool:
        """One SET, bounded: a Redis that is away must not hold the turn's start (the mirror
        names it again with its first write)."""
        spec = turn.spec
        try:
            async with asyncio.timeout(POINT_TIMEOUT_SECONDS):
                await self._client.set(
                    self._keys.conversation(spec.conversation_id),
                    owner_record(spec, self._instances.id),
                    ex=self._terms.running_ttl_seconds,
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("mirror", exc)
            return False
        return True

    async def _mirror(self, turn: Turn, pointed: bool) -> None:
        """Write each batch of the turn's log as it comes; a batch that fails is sent again
        with the next one (entry ids make a repeat harmless), and the last ones are retried
        a few times before giving up (a reader elsewhere then sees a gap, never a lie)."""
        pending: list[tuple[int, TurnEvent]] = []
        async for batch in turn.batches(TURN_EVENTS, interval=self._terms.mirror_interval):
            pending.extend(batch)
            if await self._sent(turn, pending, point=not pointed):
                pointed, pending = True, []
        for wait in FINAL_RETRIES:
            if not pending and pointed:
                return
            await asyncio.sleep(wait)
            if await self._sent(turn, pending, point=not pointed):
                pointed, pending = True, []

    async def _sent(self, turn: Turn, events: list[tuple[int, TurnEvent]], *, point: bool) -> bool:
        try:
            await self._write(turn, events, point=point)
        except (RedisError, OSError) as exc:
            self._failed("mirror", exc)
            return False
        return True

    async def _write(self, turn: Turn, events: list[tuple[int, TurnEvent]], *, point: bool) -> None:
        spec, terms = turn.spec, self._terms
        stream = self._keys.turn(spec.assistant_message_id)
        pointer = self._keys.conversation(spec.conversation_id)
        ended = bool(events) and isinstance(events[-1][1], TurnEnded)
        ttl = terms.ttl_seconds if ended else terms.running_ttl_seconds
        pipe = self._client.pipeline(transaction=False)
        if point:
            pipe.set(pointer, owner_record(spec, self._instances.id), ex=ttl)
        if events:
            # One entry per write batch, numbered by its last event: a batch sent again with
            # the next one (its first try failed after Redis took it) overlaps, never collides.
            entry_id = f"{events[-1][0] + 1}-0"
            pipe.xadd(stream, entry_of(events), id=entry_id, maxlen=terms.max_events)  # type: ignore[arg-type]
        # Times to live: set when the stream is made (its first event is in this write), and
        # shortened to RESUME_SECONDS by the last write; between them, one XADD per batch.
        if ended or (events and events[0][0] == 0):
            pipe.expire(stream, ttl)
        if ended:
            pipe.expire(pointer, ttl)
        for result in await pipe.execute(raise_on_error=False):
            # An entry sent before (its batch failed after Redis took it) is refused: fine.
            if isinstance(result, ResponseError) and "equal or smaller" in str(result):
                continue
            if isinstance(result, BaseException):
                raise result

    async def close(self) -> None:
        """Until every mirror has written its turn's last events (or given up)."""
        while self._mirrors:
            await asyncio.wait(set(self._mirrors))

    # -- any instance --------------------------------------------------------------------

    async def replay(
        self, conversation_id: str, user_id: str, wire_format: WireFormat[T], after: int
    ) -> AsyncIterator[Batch[T]] | None:
        local = self._local.local(conversation_id, user_id, wire_format, after)
        if local is not None:
            return local
        try:
            owner = await read_owner(self._client, self._keys, conversation_id)
            if owner is None or owner["user"] != user_id:
                return None
            stream = self._keys.turn(owner["turn"])
            first = cast(Entries, await self._client.xrange(stream, "-", "+", count=READ_COUNT))
        except (RedisError, OSError) as exc:
            self._failed("follow", exc)
            raise LiveEventsUnavailable("live events unavailable, please retry") from exc
        return self._from_start(stream, owner["instance"], wire_format, after, first)

    async def follow_turn(
        self, turn_id: str, owner: str, wire_format: WireFormat[T], after: int = -1
    ) -> AsyncIterator[Batch[T]] | None:
        """A turn's items by its id (its request was claimed by instance `owner`), its first
        entry waited for up to a heartbeat when the turn has not written it yet; None when it
        does not come (the turn never started) or is gone (expired)."""
        stream = self._keys.turn(turn_id)
        block_ms = max(1, int(self._instances.heartbeat_seconds * 1000))
        try:
            first = cast(Entries, await self._client.xrange(stream, "-", "+", count=READ_COUNT))
            if not first:  # XREAD BLOCK waits for a key that does not exist yet, too
                read: Any = await self._client.xread(
                    {stream: "0-0"}, count=READ_COUNT, block=block_ms
                )
                first = cast(Entries, read[0][1]) if read else ()
        except (RedisError, OSError) as exc:
            self._failed("follow", exc)
            raise LiveEventsUnavailable("live events unavailable, please retry") from exc
        return self._from_start(stream, owner, wire_format, after, first)

    def _from_start(
        self, stream: str, owner: str, wire_format: WireFormat[T], after: int, first: Entries
    ) -> AsyncIterator[Batch[T]] | None:
        if not first or first[0][1].get("first") != "0":
            return None  # expired meanwhile, or trimmed: nothing exact to resume
        return self._follow(stream, owner, wire_format, after, first)

    async def _follow(
        self, stream: str, owner: str, wire_format: WireFormat[T], after: int, entries: Entries
    ) -> AsyncIterator[Batch[T]]:
        """Encode the entries from the first on (the encoder needs them all), yield the items
        after `after`, read more until the turn ends; a gap, a lost owner or Redis going away
        ends the stream with the format's error instead."""
        encoder = wire_format.encoder()
        next_item, expected, last_id = 0, 0, "0-0"
        while True:
            batch: Batch[T] = []
            failure: Failure | None = None
            for entry_id, fields in entries:
                first, events = events_of(fields)
                if first > expected:
                    self._failed("follow", Unreadable(f"{stream}: event {first}, not {expected}"))
                    failure = Failure.UNREACHABLE
                    break
                last_id = entry_id
                for event in events[expected - first :]:  # those not seen in an earlier entry
                    expected += 1
                    for item in encoder.encode(event):
                        if next_item > after:
                            batch.append((next_item, item))
                        next_item += 1
                    if isinstance(event, TurnEnded):
                        yield batch
                        return
            if batch:
                yield batch
            if failure is None:
                entries, failure = await self._read(stream, last_id, owner)
            if failure is not None:
                # The error is not one of the turn's items: it carries the last id the reader
                # has, so resuming from it (here or elsewhere) skips nothing real.
                cursor = max(next_item - 1, after)
                items = encoder.encode(TurnFailed(failure, failure.value))
                yield [(cursor, item) for item in items]
                return

    async def _read(self, stream: str, last_id: str, owner: str) -> tuple[Entries, Failure | None]:
        """The entries after `last_id`, waiting up to a heartbeat for them; none and a failure
        when the owner is gone or Redis cannot be read."""
        block_ms = max(1, int(self._instances.heartbeat_seconds * 1000))
        try:
            read: Any = await self._client.xread(
                {stream: last_id}, count=READ_COUNT, block=block_ms
            )
            if read:  # [[stream, entries]] (RESP2, the client's default protocol)
                return cast(Entries, read[0][1]), None
            return (), None if await self._instances.alive(owner) else Failure.LOST
        except (RedisError, OSError) as exc:
            self._failed("follow", exc)
            return (), Failure.UNREACHABLE
