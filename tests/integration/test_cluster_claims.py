"""Request ids claimed across instances, on the real Redis: the first instance's claim sends
a repeat elsewhere to its turn; a released claim, or one whose instance is gone, is taken; a
release never drops someone else's claim; a Redis that cannot be asked lets the request run;
and a repeat follows the claimed turn's stream from its first event, even one not written yet."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from chatrelay.cluster import Instances, Keys, RedisTurnBuffer
from chatrelay.cluster.claims import RedisRequestClaims
from chatrelay.cluster.streams import StreamTerms, entry_of
from chatrelay.turns import TURN_EVENTS, Elsewhere, Metrics, TurnEvent, TurnRegistry
from tests.integration.instances import REDIS_URL, drop_keys
from tests.integration.processes import free_port
from tests.integration.test_cluster_streams import EVENTS

KEY = ("alice", None, "req-1")
HEARTBEAT = 0.2


@dataclass
class Node:
    instances: Instances
    claims: RedisRequestClaims


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[Redis, Keys, Node, Node]]:
    keys = Keys(f"test-{uuid.uuid4().hex[:12]}")
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    terms = StreamTerms(ttl_seconds=60, running_ttl_seconds=60, max_events=1000)

    def node(name: str) -> Node:
        instances = Instances(client, keys, HEARTBEAT, instance_id=name)
        buffer = RedisTurnBuffer(client, keys, TurnRegistry(), instances, terms)
        return Node(instances, RedisRequestClaims(client, keys, instances, buffer, 60))

    a, b = node("a"), node("b")
    await a.instances.beat()
    await b.instances.beat()
    yield client, keys, a, b
    await client.aclose()
    drop_keys(REDIS_URL, keys.prefix)


async def test_a_claim_sends_a_repeat_elsewhere_until_it_is_released(
    cluster: tuple[Redis, Keys, Node, Node],
) -> None:
    _, _, a, b = cluster
    assert await a.claims.claim(KEY, ("thr_a", "msg_a")) is None  # A's now
    assert await b.claims.claim(KEY, ("thr_b", "msg_b")) == Elsewhere("thr_a", "msg_a", "a")
    assert await b.claims.claim(("bob", None, "req-1"), ("thr_c", "msg_c")) is None  # per user

    await b.claims.release(KEY, ("thr_b", "msg_b"))  # not B's: A's claim stays
    assert await b.claims.claim(KEY, ("thr_b", "msg_b")) == Elsewhere("thr_a", "msg_a", "a")
    await a.claims.release(KEY, ("thr_a", "msg_a"))
    assert await b.claims.claim(KEY, ("thr_b", "msg_b")) is None


async def test_a_gone_instances_claim_is_taken_over(
    cluster: tuple[Redis, Keys, Node, Node],
) -> None:
    client, keys, a, b = cluster
    assert await a.claims.claim(KEY, ("thr_a", "msg_a")) is None
    await client.delete(keys.instance("a"))  # A missed three heartbeats

    assert await b.claims.claim(KEY, ("thr_b", "msg_b")) is None
    await a.claims.release(KEY, ("thr_a", "msg_a"))  # A's late release leaves B's alone
    assert await a.claims.claim(KEY, ("thr_a", "msg_a")) == Elsewhere("thr_b", "msg_b", "b")


async def test_a_stale_claim_of_this_instance_is_its_own_again(
    cluster: tuple[Redis, Keys, Node, Node],
) -> None:
    _, _, a, b = cluster
    assert await a.claims.claim(KEY, ("thr_a", "msg_a")) is None  # its release was lost
    assert await a.claims.claim(KEY, ("thr_a2", "msg_a2")) is None
    assert await b.claims.claim(KEY, ("thr_b", "msg_b")) == Elsewhere("thr_a2", "msg_a2", "a")


async def test_a_redis_that_cannot_be_asked_lets_the_request_run() -> None:
    keys = Keys("test-down")
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}", decode_responses=True)
    instances = Instances(client, keys, HEARTBEAT, instance_id="a")
    terms = StreamTerms(ttl_seconds=60, running_ttl_seconds=60, max_events=1000)
    buffer = RedisTurnBuffer(client, keys, TurnRegistry(), instances, terms)
    metrics = Metrics(open_streams=lambda: 0)
    claims = RedisRequestClaims(client, keys, instances, buffer, 60, metrics)
    try:
        assert await claims.claim(KEY, ("thr_a", "msg_a")) is None
        await claims.release(KEY, ("thr_a", "msg_a"))  # logged, never raised
    finally:
        await client.aclose()
    errors = metrics.shared_state_errors
    assert errors.labels("claim")._value.get() == 1
    assert errors.labels("release")._value.get() == 1


async def test_a_repeat_follows_the_claimed_turn_from_its_first_event(
    cluster: tuple[Redis, Keys, Node, Node],
) -> None:
    client, keys, a, b = cluster
    elsewhere = Elsewhere("thr_1", "msg_1", "a")
    # The repeat arrives before A's turn has written anything: it waits for the first entry.
    following = asyncio.create_task(b.claims.follow(elsewhere, TURN_EVENTS))
    while not any(c.get("cmd") == "xread" for c in await client.client_list()):  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # until Redis says B is blocked in its XREAD
    for numbers in (range(0, 3), range(3, len(EVENTS))):
        events: list[tuple[int, TurnEvent]] = [(n, EVENTS[n]) for n in numbers]
        await client.xadd(keys.turn("msg_1"), entry_of(events), id=f"{numbers[-1] + 1}-0")  # type: ignore[arg-type]
    items = await asyncio.wait_for(following, 5)
    assert items is not None
    assert [event async for batch in items for _, event in batch] == EVENTS


async def test_a_claimed_turn_that_never_writes_cannot_be_followed(
    cluster: tuple[Redis, Keys, Node, Node],
) -> None:
    _, _, _, b = cluster
    elsewhere = Elsewhere("thr_1", "msg_never", "a")
    assert await asyncio.wait_for(b.claims.follow(elsewhere, TURN_EVENTS), 5) is None
