"""Per-user limits: turns per time window, and open streams at once (`RateLimited`)."""

from __future__ import annotations

import inspect
import logging
import time
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any

from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from chatrelay.turns.errors import RateLimited


class StreamSlot:
    """One open stream of a user; released once, however the stream ends."""

    def __init__(self, streams: Counter[str], user_id: str) -> None:
        self._streams = streams
        self._user_id = user_id
        self._held = True

    def release_with(self, stream: object) -> None:
        """Also release when `stream` is garbage: a response that never started never runs
        its stream's `finally`."""
        weakref.finalize(stream, self.release)

    def release(self) -> None:
        if self._held:
            self._held = False
            self._streams[self._user_id] -= 1
            if self._streams[self._user_id] <= 0:
                del self._streams[self._user_id]


logger = logging.getLogger("chatrelay.turns")


class UserLimits:
    def __init__(
        self,
        rate_limit: str,
        storage_url: str,
        max_streams: int,
        *,
        storage_options: dict[str, Any] | None = None,
        fail_open: bool = False,
    ) -> None:
        # Async storage: in-process memory by default, Redis (`async+redis://`) across processes.
        self._storage = storage_from_string(storage_url, **(storage_options or {}))
        self._fail_open = fail_open
        """A shared counter that cannot be reached lets turns through (with `storage_options`
        `wrap_exceptions=True`): Redis going away must not stop the service."""
        self.on_storage_error: Callable[[], None] | None = None
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._turns = parse(rate_limit)
        self._max_streams = max_streams
        self._streams: Counter[str] = Counter()

    async def count_turn(self, user_id: str) -> None:
        """Count a new turn of the user, or raise `RateLimited` when over the limit."""
        try:
            if await self._limiter.hit(self._turns, "turns", user_id):
                return
        except StorageError as exc:
            if not self._fail_open:
                raise
            logger.warning("rate limit not counted, its storage is unreachable: %s", exc)
            if self.on_storage_error is not None:
                self.on_storage_error()
            return
        stats = await self._limiter.get_window_stats(self._turns, "turns", user_id)
        raise RateLimited("rate limit exceeded", stats.reset_time - time.time())

    def reserve_stream(self, user_id: str) -> StreamSlot:
        """Hold one of the user's stream slots, or raise `RateLimited` when all are taken.

        Reserved before a turn starts, so a refused stream never leaves a turn running.
        """
        if self._streams[user_id] >= self._max_streams:
            raise RateLimited("too many open streams", retry_after=1)
        self._streams[user_id] += 1
        return StreamSlot(self._streams, user_id)

    def open_streams(self, user_id: str | None = None) -> int:
        """Open streams of one user, or of everyone."""
        if user_id is None:
            return sum(self._streams.values())
        return self._streams[user_id]

    async def close(self) -> None:
        """Close the Redis connections, if any (`limits` has no public close): coredis's
        pool disconnects at once, redis-py's is awaited."""
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            done = pool.disconnect()
            if inspect.isawaitable(done):
                await done
