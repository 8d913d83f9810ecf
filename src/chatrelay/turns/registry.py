"""Every running turn of this process, and the recently finished ones (for resume)."""

from __future__ import annotations

import asyncio
from asyncio import FIRST_COMPLETED

from chatrelay.turns.errors import ShuttingDown
from chatrelay.turns.spec import Failure
from chatrelay.turns.turn import Turn


class TurnRegistry:
    """Owns every turn's task, so shutdown can wait for them (and none is orphaned)."""

    def __init__(self, keep_finished_seconds: float = 300.0) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: dict[str, Turn] = {}
        self._keep_finished = keep_finished_seconds
        self._finished: dict[str, tuple[Turn, float]] = {}
        """Finished turns by conversation, with the loop time they expire at (for resume)."""
        self._draining = False

    @property
    def draining(self) -> bool:
        """Shutting down: running turns may finish, no new one is admitted (see `shutdown`)."""
        return self._draining

    def admit(self) -> None:
        """Raise `ShuttingDown` once shutdown has begun: a new turn belongs on another
        instance, not on one that will stop it within the grace."""
        if self._draining:
            raise ShuttingDown(Failure.SHUTDOWN.value)

    def start(self, turn: Turn) -> None:
        conversation_id = turn.spec.conversation_id
        task = turn.start(name=f"turn:{conversation_id}")
        self._tasks.add(task)
        self._running[conversation_id] = turn
        task.add_done_callback(lambda done: self._ended(turn, done))

    def _ended(self, turn: Turn, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        release = turn.abandon()  # a no-op unless the task never ran
        if release is not None:
            cleanup = asyncio.ensure_future(release)
            self._tasks.add(cleanup)  # owned: shutdown waits for it like for a turn
            cleanup.add_done_callback(self._tasks.discard)
        conversation_id = turn.spec.conversation_id
        if self._running.get(conversation_id) is turn:
            del self._running[conversation_id]
            expires = asyncio.get_running_loop().time() + self._keep_finished
            # Re-inserted at the end: the dict stays ordered by expiry (one fixed keep time).
            self._finished.pop(conversation_id, None)
            self._finished[conversation_id] = (turn, expires)
        self._expire_finished()

    def _expire_finished(self) -> None:
        """Drop expired turns from the front: O(expired), not O(kept), per call."""
        now = asyncio.get_running_loop().time()
        while self._finished:
            conversation_id, (_turn, expires) = next(iter(self._finished.items()))
            if expires > now:
                return
            del self._finished[conversation_id]

    def latest_turn(self, conversation_id: str) -> Turn | None:
        """The running turn, or the last finished one while its events are kept (resume)."""
        running = self._running.get(conversation_id)
        if running is not None:
            return running
        self._expire_finished()
        finished = self._finished.get(conversation_id)
        return finished[0] if finished is not None else None

    @property
    def running(self) -> int:
        """Tasks still running: turns, and the clean-up of turns that never ran."""
        return len(self._tasks)

    def running_turns(self) -> list[Turn]:
        """Turns whose outcome is not settled yet, oldest first."""
        return [turn for turn in self._running.values() if not turn.outcome.done()]

    def running_turn(self, conversation_id: str) -> Turn | None:
        """The conversation's turn until its outcome is settled (its task may still be
        winding down for a moment: then there is nothing left to stop)."""
        turn = self._running.get(conversation_id)
        if turn is None or turn.outcome.done():
            return None
        return turn

    def stop(self, conversation_id: str) -> Turn | None:
        """Stop the conversation's running turn (its run is cancelled, its partial reply kept)."""
        turn = self._running.get(conversation_id)
        if turn is not None:
            turn.cancel(Failure.STOPPED)
        return turn

    async def wait(self) -> None:
        """Until every turn (and clean-up) has ended."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def shutdown(self, grace_seconds: float, hurry: asyncio.Event | None = None) -> None:
        """Admit no new turn; let running ones finish within the grace period (or until
        `hurry` is set: a second signal), then cancel the rest, which are finalized as
        `Failure.SHUTDOWN`: their partial replies saved, their final events published."""
        self._draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        hurried = asyncio.ensure_future(hurry.wait()) if hurry is not None else None
        try:
            # A turn admitted just before the drain began may start meanwhile: wait for
            # whatever runs now, until the deadline, not for a snapshot taken at the start.
            while self._tasks and not (hurried is not None and hurried.done()):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                waiting = {*self._tasks, *([hurried] if hurried is not None else [])}
                await asyncio.wait(waiting, timeout=remaining, return_when=FIRST_COMPLETED)
        finally:
            if hurried is not None:
                hurried.cancel()
        for turn in list(self._running.values()):
            turn.cancel(Failure.SHUTDOWN)
        await self.wait()
