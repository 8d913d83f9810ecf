"""A turn's events and the readers following them (streams, resumes, other instances).

The log keeps the typed events. Each wire format a reader asks for gets a channel: the
format's encoder runs once per event, and every reader of that format shares its output, so
encoding costs the same for one reader as for a hundred. A channel opened late encodes the
events so far first; encoders are deterministic, so its items and ids are the same as if it
had been there from the start. A turn nobody streams (a JSON reply) encodes nothing.

Each reader reads from any item id on, at its own pace, never slowing the turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

from chatrelay.turns.events import TurnEvent

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

Batch = list[tuple[int, T]]
"""(item id, item) pairs, in order: what one write of a reader carries."""

MAX_BATCH_ITEMS = 1000
"""A reader that fell behind (a slow socket, a resume from the start) catches up in batches
of at most this many items, never one the size of the whole turn: what it holds while it
writes stays bounded, whatever the turn's length."""


class Encoder(Protocol[T_co]):
    def encode(self, event: TurnEvent) -> Sequence[T_co]:
        """The wire items for one event, in order (often one, sometimes none)."""


class WireFormat(Protocol[T_co]):
    """A named encoding of turn events; `encoder()` makes the per-turn (stateful) encoder."""

    @property
    def name(self) -> str: ...

    def encoder(self) -> Encoder[T_co]: ...


class _Identity:
    def encode(self, event: TurnEvent) -> Sequence[TurnEvent]:
        return (event,)


class _TypedEvents:
    """The events themselves, one item each (a mirror to another store reads these)."""

    name = "turn-events"

    def encoder(self) -> Encoder[TurnEvent]:
        return _Identity()


TURN_EVENTS: WireFormat[TurnEvent] = _TypedEvents()


class _Channel(Generic[T]):
    __slots__ = ("encoder", "items")

    def __init__(self, encoder: Encoder[T]) -> None:
        self.encoder = encoder
        self.items: list[T] = []


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # its reader may have been cancelled meanwhile
        waiter.set_result(None)


class EventLog:
    def __init__(self, flush_interval: float = 0.0) -> None:
        self._flush_interval = flush_interval
        """Once coalescing has started, how long a reader holds its next write back."""
        self._events: list[TurnEvent] = []
        self._channels: dict[str, _Channel[Any]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        """Readers waiting for the next event (none while they are busy writing)."""
        self._pausing: list[asyncio.Future[None]] = []
        """Readers holding back their next batch (see `batches`) until the log closes."""
        self._closed = False
        self._coalescing = False

    @property
    def events(self) -> Sequence[TurnEvent]:
        return self._events

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, event: TurnEvent) -> None:
        self._events.append(event)
        for channel in self._channels.values():
            channel.items.extend(channel.encoder.encode(event))
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                _resolve(waiter)

    def start_coalescing(self) -> None:
        """From now on readers may hold writes back (see `batches`): called at the first text
        delta, so everything up to the first token is written as soon as it exists."""
        self._coalescing = True

    def close(self) -> None:
        """No more events: readers get what is left, then their iteration ends."""
        self._closed = True
        for waiter in (*self._waiters, *self._pausing):
            _resolve(waiter)
        self._waiters = []

    def _channel(self, wire_format: WireFormat[T]) -> _Channel[T]:
        channel = self._channels.get(wire_format.name)
        if channel is None:
            channel = _Channel(wire_format.encoder())
            for event in self._events:
                channel.items.extend(channel.encoder.encode(event))
            self._channels[wire_format.name] = channel
        return channel

    async def batches(
        self, wire_format: WireFormat[T], after: int = -1, interval: float | None = None
    ) -> AsyncIterator[Batch[T]]:
        """The format's items after id `after`, then live ones until the log closes,
        everything published since the last batch at once: a reader that fell behind catches
        up in one write instead of one per item (in writes of `MAX_BATCH_ITEMS` when it is
        that far behind). With a flush interval (the log's, or this reader's `interval`),
        once coalescing has started, a batch waits that long after the previous one while
        the log is open: a burst of deltas becomes one write."""
        items = self._channel(wire_format).items
        hold = self._flush_interval if interval is None else interval
        index = after + 1
        while True:
            end = min(len(items), index + MAX_BATCH_ITEMS)
            if index < end:
                # As of this batch; a reader still catching up writes on at once.
                hold_next = bool(hold) and self._coalescing and end == len(items)
                yield [(sequence, items[sequence]) for sequence in range(index, end)]
                index = end
                if hold_next and not self._closed:
                    await self._pause(hold)
                continue
            if self._closed:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    async def _pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less when the log closes meanwhile (its last events go at once)."""
        loop = asyncio.get_running_loop()
        wake = loop.create_future()
        self._pausing.append(wake)
        timer = loop.call_later(seconds, _resolve, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._pausing.remove(wake)
