"""`EventLog`: a turn's events for its readers, and when a reader may hold a write back."""

from __future__ import annotations

import asyncio

from chatrelay.server.turn_events import EventLog


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
    log = EventLog(flush_interval=1)
    reader = log.batches()
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
    log = EventLog(flush_interval=30)
    log.start_coalescing()
    log.publish("first")
    reader = log.batches()
    assert await anext(reader) == [(0, "first")]
    pending = asyncio.ensure_future(anext(reader))
    await asyncio.sleep(0)  # the reader is now pausing, for up to 30 s
    assert not pending.done()
    log.publish("second")
    log.close()
    assert await asyncio.wait_for(pending, 5) == [(1, "second")]
    assert [batch async for batch in reader] == []


async def test_a_reader_cancelled_while_waiting_or_pausing_breaks_no_other() -> None:
    log = EventLog(flush_interval=30)
    log.start_coalescing()
    log.publish("a")
    pausing, steady = (log.batches() for _ in range(2))
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
