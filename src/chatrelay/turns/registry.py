"""Every running turn of this process, and the recently finished ones (for resume)."""

from __future__ import annotations

import asyncio

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

    async def shutdown(self, grace_seconds: float) -> None:
        """Let running turns finish within the grace period, then cancel (and finalize) the rest."""
        if not self._tasks:
            return
        await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for turn in list(self._running.values()):
            turn.cancel(Failure.SHUTDOWN)
        await self.wait()
