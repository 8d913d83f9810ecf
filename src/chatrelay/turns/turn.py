"""A turn runs in its own task, apart from whatever started it or reads it.

Readers (a stream, a resume, a JSON reply awaiting `outcome`) only follow the turn's log. A
reader that leaves does not touch the turn: it runs to the end and is committed. The turn
is cancelled only by its timeout, an explicit stop or shutdown (`cancel`), and then its model
run is cancelled too (the adapter's stream is closed). Either way the finalizer runs in
`finally`, shielded from cancellation, and writes the user and assistant messages in one
transaction - or nothing, when the model failed before producing any output.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import aclosing
from datetime import datetime, timedelta
from typing import Any, TypeVar

from chatrelay.turns.events import (
    AssistantFinished,
    AssistantStarted,
    ModelEvent,
    TextDelta,
    TitleSet,
    ToolCallArguments,
    ToolCallFinished,
    ToolCallStarted,
    TurnEnded,
    TurnEvent,
    TurnFailed,
    TurnStarted,
    UserMessageAccepted,
)
from chatrelay.turns.finalizer import commit_with_retries, complete_despite_cancellation
from chatrelay.turns.lease import Lease
from chatrelay.turns.log import Batch, EventLog, WireFormat
from chatrelay.turns.metrics import Metrics
from chatrelay.turns.model import ModelRequest, ModelUnavailable, TurnModel
from chatrelay.turns.spec import STATUS_BY_FAILURE, Failure, TurnOutcome, TurnSpec, Usage, utcnow
from chatrelay.turns.store import TurnStore
from chatrelay.turns.tracing import NO_TRACE, TurnTrace

logger = logging.getLogger("chatrelay.turns")

T = TypeVar("T")


class Turn:
    """One turn: its task, its log of events, and its outcome once finalized."""

    def __init__(
        self,
        spec: TurnSpec,
        *,
        model: TurnModel,
        store: TurnStore,
        timeout_seconds: float,
        lease: Lease | None = None,
        metrics: Metrics | None = None,
        flush_interval: float = 0.0,
        trace: TurnTrace = NO_TRACE,
    ) -> None:
        self.spec = spec
        self._model = model
        self._store = store
        self._timeout = timeout_seconds
        self._lease = lease
        self._metrics = metrics
        self._trace = trace
        self._clock_start = time.perf_counter()
        self._log = EventLog(flush_interval)
        self._text: list[str] = []
        self._calls: dict[str, dict[str, Any]] = {}
        self._reply_at: datetime | None = None
        self._reply_started = False
        self._usage = Usage()
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._cancelled_for: Failure | None = None
        self.outcome: asyncio.Future[TurnOutcome] = asyncio.get_running_loop().create_future()

    # -- readers and control -------------------------------------------------------------

    def batches(
        self, wire_format: WireFormat[T], after: int = -1, interval: float | None = None
    ) -> AsyncIterator[Batch[T]]:
        """The turn's items in `wire_format` after id `after`, then live ones until it ends
        (at most one batch per `interval` once its text streams, when given)."""
        return self._log.batches(wire_format, after, interval)

    @property
    def events(self) -> list[TurnEvent]:
        """The events published so far."""
        return list(self._log.events)

    @property
    def task(self) -> asyncio.Task[None]:
        assert self._task is not None, "start() it first"
        return self._task

    def start(self, name: str) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name=name)
        return self._task

    def cancel(self, failure: Failure) -> None:
        """Stop the run: `Failure.STOPPED` for the user's stop (the partial reply is kept as
        `cancelled`), `Failure.SHUTDOWN` for shutdown. A turn whose task has not begun yet
        never runs its model, and its finalizer still runs (and frees its conversation)."""
        if self.outcome.done():
            return
        if self._cancelled_for is None:
            self._cancelled_for = failure
        if self._running and self._task is not None:
            self._task.cancel()

    def abandon(self) -> Coroutine[Any, Any, None] | None:
        """Settle a turn whose task ended without ever running (cancelled from outside before
        its first step); returns the lease release for the caller to own, if there is one."""
        if self.outcome.done():
            return None
        failure = self._cancelled_for or Failure.SHUTDOWN
        outcome = TurnOutcome(
            message_id=self.spec.assistant_message_id,
            text="",
            created_at=utcnow(),
            tool_calls=[],
            usage=self._usage,
            status=STATUS_BY_FAILURE.get(failure, "incomplete"),
            failure=failure,
        )
        self._log.publish(TurnEnded(outcome))
        self._log.close()
        self.outcome.set_result(outcome)
        return self._lease.release() if self._lease is not None else None

    # -- the task body -------------------------------------------------------------------

    async def _run(self) -> None:
        self._running = True
        spec = self.spec
        self._log.publish(
            TurnStarted(
                conversation_id=spec.conversation_id,
                new_conversation=spec.new_conversation,
                conversation_created_at=spec.conversation_created_at,
                offer_stop=spec.offer_stop,
                retry=spec.retry,
            )
        )
        if not spec.retry:
            self._log.publish(
                UserMessageAccepted(
                    spec.user_message_id, spec.user_text, spec.user_parts, spec.started_at
                )
            )
        self._trace.started()
        failure: Failure | None = self._cancelled_for  # a stop that came before we started
        keeper = asyncio.create_task(self._lease.keep()) if self._lease else None
        try:
            if failure is None:
                async with asyncio.timeout(self._timeout):
                    await self._run_model()
        except asyncio.CancelledError:
            failure = self._cancelled_for or Failure.SHUTDOWN
            raise
        except TimeoutError:
            failure = Failure.TIMEOUT
            logger.warning("turn timed out (correlation_id=%s)", spec.correlation_id)
        except ModelUnavailable as exc:
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
        request = ModelRequest(
            user_id=spec.user_id,
            conversation_id=spec.conversation_id,
            history=spec.history,
            text=spec.user_text,
            model=spec.model,
            tool_choice=spec.tool_choice,
            attachments=spec.attachments,
            calls=self._trace,
        )
        # aclosing: however this loop ends, the run is over (and its usage read) now, not
        # when the suspended generator is garbage-collected.
        async with aclosing(self._model.stream(request, self._usage)) as events:
            async for event in events:
                self._handle(event)

    def _handle(self, event: ModelEvent) -> None:
        if type(event) is TextDelta:  # most events: the hot path
            if not self._text:
                self._first_token()
            self._text.append(event.text)
            self._log.publish(event)
            return
        match event:
            case ToolCallStarted(call_id=call_id, tool_name=name):
                self._tool_started(call_id, name, event)
            case ToolCallArguments(call_id=call_id, tool_name=name, arguments=arguments):
                self._tool_started(call_id, name)  # a provider may skip the early signal
                self._calls[call_id]["parameters"] = arguments
                self._trace.tool_started(call_id, name, arguments)
                self._log.publish(event)
                if self._metrics is not None:
                    self._metrics.tool_calls.labels(name).inc()
            case ToolCallFinished(call_id=call_id, result=result):
                record = self._calls.get(call_id)
                if record is not None:
                    record["result"] = result
                    self._trace.tool_finished(call_id, result)
                    self._log.publish(event)

    def _tool_started(self, call_id: str, name: str, event: ToolCallStarted | None = None) -> None:
        if call_id in self._calls:
            return
        self._start_reply()
        self._calls[call_id] = {"tool_name": name, "parameters": {}, "result": None}
        self._log.publish(event or ToolCallStarted(call_id, name))

    def _first_token(self) -> None:
        self._start_reply()
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

    def _start_reply(self) -> None:
        if not self._reply_started:
            self._reply_started = True
            self._log.publish(AssistantStarted(self.spec.assistant_message_id, self._reply_time()))

    # -- the finalizer -------------------------------------------------------------------

    async def _finalize(self, failure: Failure | None) -> None:
        spec = self.spec
        has_output = bool(self._text or self._calls)
        if failure is None or has_output:
            self._start_reply()  # a reply with no text still gets its item
        outcome = TurnOutcome(
            message_id=spec.assistant_message_id,
            text="".join(self._text),
            created_at=self._reply_time(),
            tool_calls=list(self._calls.values()),
            usage=self._usage,
            status=STATUS_BY_FAILURE.get(failure, "incomplete"),
            failure=failure,
        )
        try:
            if failure is None or has_output:
                terms = self._lease.terms if self._lease else None
                self._trace.commit_started()
                outcome.committed = await commit_with_retries(self._store, spec, outcome, terms)
                self._trace.commit_ended(outcome.committed)
                if not outcome.committed:
                    outcome.failure = Failure.STORAGE
            if self._lease is not None and not outcome.committed:
                # (A committed turn released it in its transaction.) Before the final
                # events: the next turn may start.
                await self._lease.release()
            self._announce(outcome)
        finally:
            self._log.publish(TurnEnded(outcome))
            self._log.close()
            self.outcome.set_result(outcome)
            self._trace.ended(outcome)
            self._record(outcome)

    def _announce(self, outcome: TurnOutcome) -> None:
        spec = self.spec
        if outcome.committed:
            self._log.publish(
                AssistantFinished(
                    outcome.message_id, outcome.text, outcome.status, outcome.created_at
                )
            )
            if spec.new_conversation and spec.title:
                self._log.publish(TitleSet(spec.title))
        if outcome.failure not in (None, Failure.STOPPED):
            assert outcome.failure is not None
            message = f"{outcome.failure.value} (correlation id: {spec.correlation_id})"
            self._log.publish(TurnFailed(outcome.failure, message))

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
        self._metrics.turns_by_format.labels(self.spec.edge, ended).inc()
        self._metrics.turn_duration.observe(seconds)
        if outcome.failure not in (None, Failure.STOPPED):
            self._metrics.errors.labels(ended).inc()
