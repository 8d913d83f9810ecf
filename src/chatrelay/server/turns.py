"""A turn runs in its own task, apart from the HTTP request that started it.

The request only reads the turn's events (SSE) or awaits its outcome (JSON). A client that
disconnects stops reading; the turn still runs to the end and is committed, so a reload shows
it. The turn is cancelled only by its timeout or by shutdown (`TurnRegistry.shutdown`), and
then its run is cancelled too (`run_agent` calls `result.cancel()`). Either way the finalizer
runs in `finally`, shielded from cancellation (`complete_despite_cancellation`), and writes
the user and assistant messages in one transaction - or nothing, when the model failed before
producing any output.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import aclosing
from datetime import datetime, timedelta
from typing import Any, TypeVar

import anyio
import openai
from agents import Agent, RunConfig
from agents.exceptions import AgentsException
from chatkit.types import StreamOptions, StreamOptionsEvent, ThreadItemDoneEvent
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.agents import (
    RunEvent,
    RunTrace,
    TextDelta,
    ToolCalled,
    ToolCallStarted,
    ToolReturned,
    TurnContext,
    UsageTotals,
    run_agent,
)
from chatrelay.schemas import chatkit as ck
from chatrelay.server.chatkit_items import user_item
from chatrelay.server.metrics import Metrics
from chatrelay.server.sse import encode_event, text_delta_encoder
from chatrelay.server.tool_activity import ToolActivity
from chatrelay.server.turn_commit import NewUserMessage, commit_turn
from chatrelay.server.turn_events import Batch, EventLog
from chatrelay.server.turn_lease import TurnLease
from chatrelay.server.turn_model import Failure, TurnOutcome, TurnSpec
from chatrelay.store.tables import utcnow

__all__ = ["Failure", "Turn", "TurnOutcome", "TurnRegistry", "TurnSpec"]

logger = logging.getLogger("chatrelay.turns")


T = TypeVar("T")


async def complete_despite_cancellation(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end even if we are cancelled meanwhile, then re-raise the cancellation.

    `anyio.CancelScope(shield=True)` alone is not enough: it shields from anyio cancel scopes
    (sse-starlette's task group) but not from a plain `Task.cancel()` (shutdown, a second
    timeout), which would abort the commit halfway. So the work runs in its own task that the
    caller only awaits through `asyncio.shield`, waiting again after every cancellation.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    with anyio.CancelScope(shield=True):
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return task.result()


_STATUS = {None: "completed", Failure.STOPPED: "cancelled"}
"""The stored status of a reply, by how its turn ended (anything else: `incomplete`)."""


class Turn:
    """One running turn: its published events (encoded once, shared by every reader)."""

    def __init__(
        self,
        spec: TurnSpec,
        *,
        agent: Agent[TurnContext],
        run_config: RunConfig,
        sessions: async_sessionmaker[AsyncSession],
        timeout_seconds: float,
        lease: TurnLease | None = None,
        metrics: Metrics | None = None,
        flush_interval: float = 0.0,
    ) -> None:
        self.spec = spec
        self._agent = agent
        self._run_config = run_config
        self._sessions = sessions
        self._timeout = timeout_seconds
        self._lease = lease
        self._metrics = metrics
        self._clock_start = time.perf_counter()
        self._log = EventLog(flush_interval)
        self._text: list[str] = []
        self._encode_delta = text_delta_encoder(spec.assistant_message_id)
        self._tools = ToolActivity(
            spec.assistant_message_id, spec.conversation_id, self._publish, self._reply_time
        )
        self._reply_at: datetime | None = None
        self._assistant_started = False
        self._stop_requested = False
        self._lease_release: asyncio.Future[None] | None = None
        self._trace = RunTrace()
        self.outcome: asyncio.Future[TurnOutcome] = asyncio.get_running_loop().create_future()

    # -- readers -------------------------------------------------------------------------

    def events(self, after: int = -1) -> AsyncIterator[tuple[int, str]]:
        """The turn's events after sequence id `after`, then live ones until it ends."""
        return self._log.events(after)

    def batches(self, after: int = -1) -> AsyncIterator[Batch]:
        """The same in batches, writes coalesced: see `EventLog.batches`."""
        return self._log.batches(after)

    def _publish(self, event: BaseModel) -> None:
        self._publish_data(encode_event(event))

    def _publish_data(self, data: str) -> None:
        self._log.publish(data)

    def _close(self) -> None:
        self._log.close()

    def abandon(self) -> None:
        """Release readers of a turn whose task ended without finalizing.

        Only possible when the task was cancelled before its first step (so `run()` and its
        `finally` never ran): then nothing was produced and there is nothing to commit.
        """
        if self.outcome.done():
            return
        stopped = self._stop_requested
        self.outcome.set_result(
            TurnOutcome(
                message_id=self.spec.assistant_message_id,
                text="",
                created_at=utcnow(),
                tool_calls=[],
                usage=UsageTotals(),
                status="cancelled" if stopped else "incomplete",
                failure=Failure.STOPPED if stopped else Failure.SHUTDOWN,
            )
        )
        self._close()
        if self._lease is not None:  # run() never started, so its finalizer never released it
            self._lease_release = asyncio.ensure_future(self._lease.release())

    def request_stop(self) -> None:
        """Mark the coming cancellation as the user's stop (not a failure)."""
        self._stop_requested = True

    # -- the task body -------------------------------------------------------------------

    async def run(self) -> None:
        spec = self.spec
        if spec.new_conversation:
            self._publish(
                ck.thread_created(spec.conversation_id, spec.new_conversation_created_at, None)
            )
        if not spec.retry:
            self._publish(ThreadItemDoneEvent(item=user_item(NewUserMessage.of(spec))))
        if spec.stream_options:
            # The widget may show its stop button; a stop is POST .../cancel (see README).
            self._publish(StreamOptionsEvent(stream_options=StreamOptions(allow_cancel=True)))
        failure: Failure | None = None
        keeper = asyncio.create_task(self._lease.keep()) if self._lease else None
        try:
            async with asyncio.timeout(self._timeout):
                await self._run_model()
        except asyncio.CancelledError:
            failure = Failure.STOPPED if self._stop_requested else Failure.SHUTDOWN
            raise
        except TimeoutError:
            failure = Failure.TIMEOUT
            logger.warning("turn timed out (correlation_id=%s)", spec.correlation_id)
        except (openai.APIError, AgentsException) as exc:
            failure = Failure.MODEL
            logger.warning("model failed: %s (correlation_id=%s)", exc, spec.correlation_id)
        except Exception:
            failure = Failure.INTERNAL
            logger.exception("turn failed (correlation_id=%s)", spec.correlation_id)
        finally:
            try:
                # Reached through cancellation too: the finalizer must run to its end.
                await complete_despite_cancellation(self._finalize(failure))
            finally:
                # Renewed until the commit (which may retry for a while) has released it.
                if keeper is not None:
                    keeper.cancel()

    async def _run_model(self) -> None:
        spec = self.spec
        context = TurnContext(user_id=spec.user_id, conversation_id=spec.conversation_id)
        items = [*spec.history, {"role": "user", "content": spec.user_text}]
        run = run_agent(self._agent, items, context, self._run_config, self._trace)
        # aclosing: however this loop ends, the run is cancelled and its usage read now,
        # not when the suspended generator is garbage-collected.
        async with aclosing(run) as events:
            async for event in events:
                self._handle(event)

    def _handle(self, event: RunEvent) -> None:
        match event:
            case TextDelta(text=text):
                if not self._text:
                    self._first_token()
                self._start_assistant_message()
                self._text.append(text)
                self._publish_data(self._encode_delta(text))
            case ToolCallStarted(call_id=call_id, tool_name=name):
                self._tools.started(call_id, name)
            case ToolCalled(call_id=call_id, tool_name=name, parameters=parameters):
                self._tools.called(call_id, name, parameters)
                if self._metrics is not None:
                    self._metrics.tool_calls.labels(name).inc()
            case ToolReturned(call_id=call_id, result=result):
                self._tools.returned(call_id, result)

    def _first_token(self) -> None:
        self._log.start_coalescing()  # this token goes out at once, later ones may be batched
        if self._metrics is not None:
            self._metrics.time_to_first_token.observe(time.perf_counter() - self._clock_start)

    def _reply_time(self) -> datetime:
        """The reply's timestamp: its first output (a tool call or text), for every item the
        reply stands for, streamed and reloaded alike."""
        if self._reply_at is None:
            # Strictly after the user message, so history ordering never depends on ids.
            self._reply_at = max(utcnow(), self.spec.started_at + timedelta(microseconds=1))
        return self._reply_at

    def _start_assistant_message(self) -> None:
        if self._assistant_started:
            return
        self._assistant_started = True
        self._tools.close()  # tool work is over once the reply's text begins
        item_id = self.spec.assistant_message_id
        self._publish(
            ck.assistant_message_added(item_id, self.spec.conversation_id, self._reply_time())
        )
        self._publish(ck.content_part_added(item_id))

    # -- the finalizer -------------------------------------------------------------------

    async def _finalize(self, failure: Failure | None) -> None:
        spec = self.spec
        text = "".join(self._text)
        self._tools.close()
        has_output = bool(self._text or self._tools.calls)
        if failure is None or has_output:
            self._start_assistant_message()  # a reply with no text still gets its item
        created_at = self._reply_time()
        outcome = TurnOutcome(
            message_id=spec.assistant_message_id,
            text=text,
            created_at=created_at,
            tool_calls=self._tools.calls,
            usage=self._trace.usage,
            status=_STATUS.get(failure, "incomplete"),
            failure=failure,
        )
        try:
            if failure is None or has_output:
                outcome.committed = await commit_turn(self._sessions, spec, outcome, self._lease)
                if not outcome.committed:
                    outcome.failure = Failure.STORAGE
            if self._lease is not None and not outcome.committed:
                # (A committed turn released it in its transaction.) Before the final
                # events: the next turn may start.
                await self._lease.release()
            if outcome.committed:
                item_id = spec.assistant_message_id
                self._publish(ck.content_part_done(item_id, text))
                self._publish(
                    ck.assistant_message_done(item_id, spec.conversation_id, created_at, text)
                )
                if spec.new_conversation and spec.title:
                    # As ChatKit's server does: the new title once the turn is done.
                    self._publish(
                        ck.thread_updated(
                            spec.conversation_id, spec.new_conversation_created_at, spec.title
                        )
                    )
            if outcome.failure not in (None, Failure.STOPPED):
                self._publish(
                    ck.stream_error(
                        f"{outcome.failure.value} (correlation id: {spec.correlation_id})"
                    )
                )
        finally:
            self._close()
            self.outcome.set_result(outcome)
            self._record(outcome)

    def _record(self, outcome: TurnOutcome) -> None:
        """One log line and the metrics of a finished turn."""
        ended = "completed" if outcome.failure is None else outcome.failure.name.lower()
        seconds = time.perf_counter() - self._clock_start
        logger.info(
            "turn finished: %s",
            ended,
            extra={
                "correlation_id": self.spec.correlation_id,
                "user_id": self.spec.user_id,
                "conversation_id": self.spec.conversation_id,
                "outcome": ended,
                "status": outcome.status if outcome.committed else None,
                "committed": outcome.committed,
                "duration_ms": round(seconds * 1000, 1),
                "tool_calls": len(outcome.tool_calls),
            },
        )
        if self._metrics is None:
            return
        self._metrics.turns.labels(ended).inc()
        self._metrics.turn_duration.observe(seconds)
        if outcome.failure not in (None, Failure.STOPPED):
            self._metrics.errors.labels(ended).inc()


class TurnRegistry:
    """Owns every running turn's task, so shutdown can wait for them (and none is orphaned)."""

    def __init__(self, keep_finished_seconds: float = 300.0) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._by_conversation: dict[str, tuple[Turn, asyncio.Task[None]]] = {}
        self._keep_finished = keep_finished_seconds
        self._finished: dict[str, tuple[Turn, float]] = {}
        """Finished turns by conversation, with the loop time they expire at (for resume)."""

    def start(self, turn: Turn) -> None:
        conversation_id = turn.spec.conversation_id
        task = asyncio.create_task(turn.run(), name=f"turn:{conversation_id}")
        self._tasks.add(task)
        self._by_conversation[conversation_id] = (turn, task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda done: self._forget(conversation_id, done))
        task.add_done_callback(lambda _task: turn.abandon())

    def _forget(self, conversation_id: str, task: asyncio.Task[None]) -> None:
        entry = self._by_conversation.get(conversation_id)
        if entry is not None and entry[1] is task:
            del self._by_conversation[conversation_id]
            expires = asyncio.get_running_loop().time() + self._keep_finished
            # Re-inserted at the end: the dict stays ordered by expiry (one fixed keep time).
            self._finished.pop(conversation_id, None)
            self._finished[conversation_id] = (entry[0], expires)
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
        running = self._by_conversation.get(conversation_id)
        if running is not None:
            return running[0]
        self._expire_finished()
        finished = self._finished.get(conversation_id)
        return finished[0] if finished is not None else None

    @property
    def running(self) -> int:
        return len(self._tasks)

    def running_turn(self, conversation_id: str) -> Turn | None:
        """The conversation's turn until its outcome is settled (its task may still be
        winding down for a moment: then there is nothing left to stop)."""
        entry = self._by_conversation.get(conversation_id)
        if entry is None or entry[0].outcome.done():
            return None
        return entry[0]

    def stop(self, conversation_id: str) -> Turn | None:
        """Stop the conversation's running turn (its run is cancelled, its partial reply kept)."""
        entry = self._by_conversation.get(conversation_id)
        if entry is None:
            return None
        turn, task = entry
        turn.request_stop()
        task.cancel()
        return turn

    async def shutdown(self, grace_seconds: float) -> None:
        """Let running turns finish within the grace period, then cancel (and finalize) the rest."""
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
