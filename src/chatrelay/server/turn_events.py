"""A turn's published events, encoded once, and the readers following them (SSE streams,
resumes): each reads from any sequence id on, at its own pace, never slowing the turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

Batch = list[tuple[int, str]]
"""(sequence id, encoded ChatKit event) pairs, in order."""


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # its reader may have been cancelled meanwhile
        waiter.set_result(None)


class EventLog:
    def __init__(self, flush_interval: float = 0.0) -> None:
        self._flush_interval = flush_interval
        """Once coalescing has started, how long a reader holds its next write back."""
        self._events: list[str] = []
        self._waiters: list[asyncio.Future[None]] = []
        """Readers waiting for the next event (none while they are busy writing)."""
        self._pausing: list[asyncio.Future[None]] = []
        """Readers holding back their next batch (see `batches`) until the log closes."""
        self._closed = False
        self._coalescing = False

    def publish(self, data: str) -> None:
        self._events.append(data)
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

    async def events(self, after: int = -1) -> AsyncIterator[tuple[int, str]]:
        """Yield `(sequence id, encoded event)` after `after`, then live ones until the end."""
        async for batch in self.batches(after):
            for event in batch:
                yield event

    async def batches(self, after: int = -1) -> AsyncIterator[Batch]:
        """Like `events()`, but everything published since the last batch at once: a reader
        that fell behind catches up in one write instead of one per event. With a flush
        interval, once coalescing has started, a batch waits that long after the previous
        one while the log is open: a burst of deltas becomes one write."""
        index = after + 1
        while True:
            end = len(self._events)
            if index < end:
                hold_next = bool(self._flush_interval) and self._coalescing  # as of this batch
                yield [(sequence, self._events[sequence]) for sequence in range(index, end)]
                index = end
                if hold_next and not self._closed:
                    await self._pause(self._flush_interval)
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
