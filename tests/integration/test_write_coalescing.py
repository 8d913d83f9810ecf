"""SSE write coalescing (`SSE_FLUSH_INTERVAL_SECONDS`): a burst of deltas goes out in few
writes, the stream's events are exactly those of an uncoalesced one, the first batch is
never held back, and a turn's last events are not held back either."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from starlette.types import Message

from chatrelay.server.turn_events import EventLog
from tests.conftest import AppFactory, auth
from tests.fakes.asgi import body_text, post_and_hang_up
from tests.sse import parse_sse, validate_chatkit

SSE = {"Accept": "text/event-stream"}
WORDS = " ".join(f"w{i}" for i in range(60))


async def _stream(app: FastAPI, message: str) -> list[Message]:
    """Every ASGI message of one streamed turn (the client stays to the end)."""
    stay = asyncio.Event()  # never set: the client never hangs up
    headers = {**auth(), **SSE}
    return await post_and_hang_up(app, "/api/alice/chat", {"message": message}, headers, stay)


def _writes(messages: list[Message]) -> int:
    return sum(1 for m in messages if m["type"] == "http.response.body" and m.get("body"))


async def test_a_burst_of_deltas_is_written_in_a_few_writes(app_factory: AppFactory) -> None:
    plain = await app_factory(sse_flush_interval_seconds=0)
    coalesced = await app_factory(sse_flush_interval_seconds=0.05)

    one_per_event = await _stream(plain, WORDS)
    batched = await _stream(coalesced, WORDS)

    frames, batched_frames = parse_sse(body_text(one_per_event)), parse_sse(body_text(batched))
    validate_chatkit(batched_frames)
    assert _writes(one_per_event) >= 60  # one per delta at least
    assert _writes(batched) < len(frames) / 4
    # Same events in the same order with the same sequence ids (only the ids of the
    # conversation and its items differ between the two turns).
    assert [f.id for f in batched_frames] == [f.id for f in frames]
    assert [f.data["type"] for f in batched_frames] == [f.data["type"] for f in frames]


def _ready(step: object) -> object:
    """The value of an awaitable that completes without suspending; AssertionError if it
    would wait (for a timer, say)."""
    iterator = step.__await__()  # type: ignore[attr-defined]
    try:
        iterator.send(None)
    except StopIteration as done:
        return done.value
    iterator.close()
    raise AssertionError("it waited")


async def test_nothing_is_held_back_until_the_first_token() -> None:
    log = EventLog()
    reader = log.batches(flush_interval=1)
    log.publish("thread created")
    assert _ready(anext(reader)) == [(0, "thread created")]
    log.start_coalescing()
    log.publish("first token")
    assert _ready(anext(reader)) == [(1, "first token")]  # the first token is not held back
    log.publish("second")
    with_pause = anext(reader)
    try:
        _ready(with_pause)
    except AssertionError:
        pass  # the second batch waits for the flush interval
    else:
        raise AssertionError("the second batch was not held back")


async def test_the_last_events_are_not_held_back() -> None:
    log = EventLog()
    log.start_coalescing()
    log.publish("first")
    reader = log.batches(flush_interval=30)
    assert await anext(reader) == [(0, "first")]
    pending = asyncio.ensure_future(anext(reader))
    await asyncio.sleep(0)  # the reader is now pausing, for up to 30 s
    assert not pending.done()
    log.publish("second")
    log.close()
    assert await asyncio.wait_for(pending, 5) == [(1, "second")]
    assert [batch async for batch in reader] == []


async def test_a_reader_cancelled_while_waiting_or_pausing_breaks_no_other() -> None:
    log = EventLog()
    log.start_coalescing()
    log.publish("a")
    pausing, steady = (log.batches(flush_interval=30) for _ in range(2))
    for reader in (pausing, steady):
        assert await anext(reader) == [(0, "a")]
    paused = asyncio.ensure_future(anext(pausing))  # pausing for up to 30 s
    waiter_reader = log.batches(after=0)
    waited = asyncio.ensure_future(anext(waiter_reader))  # waiting for an event
    await asyncio.sleep(0)
    paused.cancel()
    waited.cancel()
    await asyncio.gather(paused, waited, return_exceptions=True)
    log.publish("b")
    log.close()
    assert [batch async for batch in steady] == [[(1, "b")]]
    assert [event async for event in log.events(after=-1)] == [(0, "a"), (1, "b")]
