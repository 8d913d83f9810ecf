"""`EventLog`: a turn's events for its readers, and when a reader may hold a write back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from chatrelay.turns import TextDelta, TitleSet, TurnEvent
from chatrelay.turns.log import MAX_BATCH_ITEMS, EventLog


class _Names:
    """A wire format for tests: each event as its type name (and text, for deltas)."""

    name = "names"
    encoded = 0

    def encoder(self) -> _Names:
        return self

    def encode(self, event: TurnEvent) -> Sequence[str]:
        self.encoded += 1
        return (event.text if isinstance(event, TextDelta) else type(event).__name__,)


NAMES = _Names()


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
    reader = log.batches(NAMES)
    log.publish(TitleSet("thread created"))
    assert _ready(anext(reader)) == [(0, "TitleSet")]
    log.start_coalescing()
    log.publish(TextDelta("first token"))
    assert _ready(anext(reader)) == [(1, "first token")]  # the first token is not held back
    log.publish(TextDelta("second"))
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
    log.publish(TextDelta("first"))
    reader = log.batches(NAMES)
    assert await anext(reader) == [(0, "first")]
    pending = asyncio.ensure_future(anext(reader))
    await asyncio.sleep(0)  # the reader is now pausing, for up to 30 s
    assert not pending.done()
    log.publish(TextDelta("second"))
    log.close()
    assert await asyncio.wait_for(pending, 5) == [(1, "second")]
    assert [batch async for batch in reader] == []


async def test_a_reader_cancelled_while_waiting_or_pausing_breaks_no_other() -> None:
    log = EventLog(flush_interval=30)
    log.start_coalescing()
    log.publish(TextDelta("a"))
    pausing, steady = (log.batches(NAMES) for _ in range(2))
    for reader in (pausing, steady):
        assert await anext(reader) == [(0, "a")]
    paused = asyncio.ensure_future(anext(pausing))  # pausing for up to 30 s
    waiter_reader = log.batches(NAMES, after=0)
    waited = asyncio.ensure_future(anext(waiter_reader))  # waiting for an event
    await asyncio.sleep(0)
    paused.cancel()
    waited.cancel()
    await asyncio.gather(paused, waited, return_exceptions=True)
    log.publish(TextDelta("b"))
    log.close()
    assert [batch async for batch in steady] == [[(1, "b")]]
    assert [e async for batch in log.batches(NAMES) for e in batch] == [(0, "a"), (1, "b")]


async def test_each_event_is_encoded_once_per_format_however_many_read_it() -> None:
    names = _Names()
    log = EventLog()
    log.publish(TextDelta("early"))
    readers = [log.batches(names) for _ in range(5)]  # the first opens the channel
    for reader in readers:
        assert await anext(reader) == [(0, "early")]
    log.publish(TextDelta("late"))
    log.close()
    for reader in readers:
        assert [batch async for batch in reader] == [[(1, "late")]]
    assert names.encoded == 2


async def test_a_turn_nobody_streams_encodes_nothing() -> None:
    names = _Names()
    log = EventLog()
    for word in ("a", "b", "c"):
        log.publish(TextDelta(word))
    log.close()
    assert names.encoded == 0
    assert [type(event) for event in log.events] == [TextDelta] * 3


async def test_a_reader_far_behind_catches_up_in_bounded_batches() -> None:
    """A slow socket or a resume from the start never holds a list the size of the turn,
    and catching up is not held back by the flush interval."""
    log = EventLog(flush_interval=60.0)
    log.start_coalescing()
    for index in range(2 * MAX_BATCH_ITEMS + 5):
        log.publish(TextDelta(text=str(index)))
    reader = log.batches(NAMES)
    sizes = [len(_ready(anext(reader))) for _ in range(3)]  # type: ignore[arg-type]
    assert sizes == [MAX_BATCH_ITEMS, MAX_BATCH_ITEMS, 5]


async def test_a_reader_may_hold_its_writes_longer_than_the_log_does() -> None:
    """The Redis mirror's own interval: while the stream's readers write every token at once
    (no flush interval), the mirror gathers everything published meanwhile into its next
    write, and its last one goes as soon as the log closes."""
    log = EventLog(flush_interval=0)
    log.start_coalescing()
    log.publish(TextDelta("a"))
    stream, mirror = log.batches(NAMES), log.batches(NAMES, interval=30)
    assert await anext(stream) == [(0, "a")]
    assert await anext(mirror) == [(0, "a")]
    pending = asyncio.ensure_future(anext(mirror))
    for word in ("b", "c", "d"):
        log.publish(TextDelta(word))
        assert _ready(anext(stream)) == [(len(log.events) - 1, word)]  # one write each
    await asyncio.sleep(0)
    assert not pending.done()  # pausing, for up to 30 s
    log.close()
    assert await asyncio.wait_for(pending, 5) == [(1, "b"), (2, "c"), (3, "d")]
    assert [batch async for batch in mirror] == []
