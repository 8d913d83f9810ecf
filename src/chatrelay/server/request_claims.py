"""Which request ids this process is serving, so a repeat attaches instead of running twice."""

from __future__ import annotations

import asyncio

from chatrelay.server.turns import Turn

RequestKey = tuple[str, str | None, str]
"""(user id, conversation id or None for a new conversation, request id)."""


class RequestClaims:
    """In-process: which request ids are being served, so a repeat attaches, never runs twice.

    The first request claims its key; a repeat gets the claim's future, which resolves to
    the running turn (or None when the first request ended without starting one).
    """

    def __init__(self) -> None:
        self._claims: dict[RequestKey, asyncio.Future[Turn | None]] = {}

    def claim(self, key: RequestKey) -> asyncio.Future[Turn | None] | None:
        """None when the caller now owns the key; else the owner's future to wait on."""
        existing = self._claims.get(key)
        if existing is not None:
            return existing
        self._claims[key] = asyncio.get_running_loop().create_future()
        return None

    def started(self, key: RequestKey, turn: Turn) -> None:
        """The owner's turn runs: repeats attach to it until its task ends."""
        self._claims[key].set_result(turn)
        turn.outcome.add_done_callback(lambda _: self._claims.pop(key, None))

    def abandoned(self, key: RequestKey) -> None:
        """The owner answered without a turn (stored reply, or an error)."""
        future = self._claims.pop(key, None)
        if future is not None and not future.done():
            future.set_result(None)
