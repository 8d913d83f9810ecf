"""A turn's Redis Stream read by another instance, on the real Redis: one entry per write
batch, and once the text streams at most one per mirror interval; a batch sent again with
the next (its first try failed after Redis took it) overlaps
and is read once; a gap (an entry trimmed or lost) ends the stream with an error, never with
events out of place."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from chatrelay.cluster import Instances, Keys, RedisTurnBuffer
from chatrelay.cluster.streams import StreamTerms, entry_of
from chatrelay.turns import (
    TURN_EVENTS,
    Failure,
    TextDelta,
    TurnConfig,
    TurnEnded,
    TurnEvent,
    TurnFailed,
    TurnOutcome,
    TurnRegistry,
    TurnService,
    TurnStarted,
    Usage,
    UserLimits,
)
from tests.fakes.turns import Block, InMemoryTurnStore, ScriptedModel
from tests.integration.instances import REDIS_URL, drop_keys
from tests.unit.turns.helpers import logged, message, settled

AT = datetime(2026, 12, 7, tzinfo=UTC)
EVENTS: list[TurnEvent] = [
    TurnStarted("thr_1", True, AT, offer_stop=False, retry=False),
    *(TextDelta(f"w{i} ") for i in range(5)),
    TurnEnded(TurnOutcome("msg_1", "w0 w1 w2 w3 w4 ", AT, [], Usage(), "completed")),
]


@pytest.fixture
async def buffer() -> AsyncIterator[tuple[Redis, Keys, RedisTurnBuffer]]:
    keys = Keys(f"test-{uuid.uuid4().hex[:12]}")
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    instances = Instances(client, keys, heartbeat_seconds=0.2)
    await instances.beat()  # the owner is alive for the whole test
    terms = StreamTerms(ttl_seconds=60, running_ttl_seconds=60, max_events=1000)
    yield client, keys, RedisTurnBuffer(client, keys, TurnRegistry(), instances, terms)
    await client.aclose()
    drop_keys(REDIS_URL, keys.prefix)


async def write(client: Redis, keys: Keys, batches: list[range]) -> None:
    """Entries as the mirror writes them, each numbered by its last event."""
    await client.set(
        keys.conversation("thr_1"), '{"turn": "msg_1", "user": "alice", "instance": "me"}'
    )
    for numbers in batches:
        events = [(n, EVENTS[n]) for n in numbers]
        await client.xadd(keys.turn("msg_1"), entry_of(events), id=f"{numbers[-1] + 1}-0")  # type: ignore[arg-type]


async def read_all(buffer: RedisTurnBuffer, after: int = -1) -> list[tuple[int, TurnEvent]]:
    items = await buffer.replay("thr_1", "alice", TURN_EVENTS, after)
    assert items is not None
    return [item async for batch in items for item in batch]


async def test_an_overlapping_retry_is_read_once(
    buffer: tuple[Redis, Keys, RedisTurnBuffer],
) -> None:
    client, keys, turns = buffer
    await write(client, keys, [range(0, 2), range(0, 4), range(4, 7)])
    assert await read_all(turns) == list(enumerate(EVENTS))
    assert await read_all(turns, after=3) == list(enumerate(EVENTS))[4:]


async def test_a_gap_ends_the_stream_with_an_error_that_keeps_the_last_id(
    buffer: tuple[Redis, Keys, RedisTurnBuffer],
) -> None:
    client, keys, turns = buffer
    await write(client, keys, [range(0, 2), range(4, 7)])  # events 2 and 3 never arrived
    items = await read_all(turns)
    assert items[:2] == list(enumerate(EVENTS))[:2]
    # The error carries the last real id: a resume from it skips nothing.
    assert items[2:] == [(1, TurnFailed(Failure.UNREACHABLE, Failure.UNREACHABLE.value))]


async def test_a_stream_that_does_not_start_at_the_first_event_is_not_resumable(
    buffer: tuple[Redis, Keys, RedisTurnBuffer],
) -> None:
    client, keys, turns = buffer
    await write(client, keys, [range(2, 7)])  # trimmed from the front
    assert await turns.replay("thr_1", "alice", TURN_EVENTS, -1) is None
    assert await turns.replay("thr_1", "bob", TURN_EVENTS, -1) is None  # and never another's


async def test_a_paced_reply_reaches_redis_in_one_write_per_interval() -> None:
    """A model pacing its tokens gets the stream's readers one write per token, but the
    mirror gathers them: its first events at once, then everything held for the interval
    (30 s here, longer than the turn) in the write the turn's end lets go at once."""
    keys = Keys(f"test-{uuid.uuid4().hex[:12]}")
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    instances = Instances(client, keys, heartbeat_seconds=0.2)
    registry = TurnRegistry()
    terms = StreamTerms(ttl_seconds=60, running_ttl_seconds=60, max_events=1000, mirror_interval=30)
    mirror = RedisTurnBuffer(client, keys, registry, instances, terms)
    gates = [asyncio.Event() for _ in range(20)]
    script = [step for i, gate in enumerate(gates) for step in (TextDelta(f"w{i} "), Block(gate))]
    model = ScriptedModel(script)
    service = TurnService(
        store=InMemoryTurnStore(),
        model=model,
        registry=registry,
        buffer=mirror,
        limits=UserLimits("1000/minute", "async+memory://", max_streams=8),
        config=TurnConfig(),
    )
    try:
        await instances.beat()
        turn = await service.start(message())
        for index, gate in enumerate(gates):  # one token at a time, as a paced model sends them
            await model.until_blocked(index + 1)
            gate.set()
        await settled(turn)
        events = await logged(turn)
        await mirror.close()
        entries = await client.xrange(keys.turn(turn.spec.assistant_message_id))
        assert 2 <= len(entries) <= 3, entries  # up to the first token; the rest at the end
        elsewhere = RedisTurnBuffer(client, keys, TurnRegistry(), instances, terms)
        replayed = await elsewhere.replay(turn.spec.conversation_id, "alice", TURN_EVENTS, -1)
        assert replayed is not None
        assert [event async for batch in replayed for _, event in batch] == events
    finally:
        await client.aclose()
        drop_keys(REDIS_URL, keys.prefix)
