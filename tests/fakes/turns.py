"""Fakes of the turn core's two seams: a scripted `TurnModel` and a working in-memory
`TurnStore`, to drive `chatrelay.turns` without a provider, an SDK or a database.

`ScriptedModel` plays one script per call, as the Agents SDK's `ScriptedModel` does: model
events are yielded, `Fail` raises, `Block` waits on an event (so a test can stop, time out or
shut down the turn mid-stream) and `Spend` adds to the provider's token counts. It records
each request and how each stream ended.

`InMemoryTurnStore` keeps what `SqlTurnStore` keeps (conversations, messages, leases) and
answers as it does: `NotFound`/`Busy` from `open_turn`, which rolls its lease back when the
turn is not admitted; `commit_turn` writes the pair, a new conversation and the lease release
together or not at all, returns False when the conversation (or the retried message) is gone
and raises `Constraint` where the database's unique indexes would. Every call suspends once,
as a query does. Tests can make commits fail with `StoreUnavailable`, and hold any call at its
start (`hold`) to act while it waits.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from chatrelay.turns import (
    Busy,
    History,
    ModelEvent,
    ModelRequest,
    ModelUnavailable,
    NotFound,
    RequestKey,
    StoredMessage,
    StoredReply,
    StoreUnavailable,
    TextDelta,
    ToolCallArguments,
    ToolCallFinished,
    ToolCallStarted,
    TurnOutcome,
    TurnSpec,
    Usage,
    new_id,
    utcnow,
)
from chatrelay.turns.store import LeaseTerms

WAIT_SECONDS = 5.0
"""A bound on every wait for a fake to reach a point: a broken turn fails a test, never hangs it."""

# -- the model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fail:
    """Raise `error` at this point of the stream (by default, the provider failing)."""

    error: BaseException = field(default_factory=lambda: ModelUnavailable("provider down"))


@dataclass(frozen=True)
class Block:
    """Wait here until `gate` is set (never, by default): meanwhile the test stops the turn,
    lets it time out or shuts it down."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Spend:
    """The provider's token counts grow by these (as a model call ends)."""

    input_tokens: int = 0
    output_tokens: int = 0


Step = ModelEvent | Fail | Block | Spend
Ending = Literal["completed", "raised", "cancelled", "closed"]


class ScriptedModel:
    """A `TurnModel` playing `scripts[n]` on its n-th call.

    `requests` holds each call's request, `endings` how each call's stream ended:
    "completed", "raised" (a `Fail` step), "cancelled" (cancelled while it waited) or
    "closed" (its consumer closed it early). A call beyond the scripts raises (the turn then
    ends INTERNAL) and fails `assert_complete()`.
    """

    def __init__(self, *scripts: Sequence[Step]) -> None:
        self._scripts = [list(script) for script in scripts]
        self.requests: list[ModelRequest] = []
        self.endings: list[Ending] = []
        self.blocked = 0
        """How many times a stream has reached a `Block` step."""
        self._progress = asyncio.Event()

    @classmethod
    def replying(cls, *texts: str) -> ScriptedModel:
        """One call per text, each text streamed word by word."""
        return cls(*([TextDelta(word) for word in text.split(" ")] for text in texts))

    @property
    def cancelled(self) -> bool:
        """Whether the last call was cancelled mid-stream."""
        return bool(self.endings) and self.endings[-1] == "cancelled"

    async def until_blocked(self, calls: int = 1) -> None:
        """Until `calls` streams (in all) have reached a `Block` step."""
        async with asyncio.timeout(WAIT_SECONDS):
            while self.blocked < calls:
                self._progress.clear()
                await self._progress.wait()

    def assert_complete(self) -> None:
        assert len(self.requests) == len(self._scripts), (
            f"{len(self.requests)} model calls for {len(self._scripts)} scripts"
        )

    async def stream(self, request: ModelRequest, usage: Usage) -> AsyncGenerator[ModelEvent, None]:
        call = len(self.requests)
        self.requests.append(request)
        if call >= len(self._scripts):
            raise AssertionError(f"unexpected model call {call + 1}: {request.text!r}")
        ending: Ending = "raised"
        try:
            for step in self._scripts[call]:
                match step:
                    case Fail(error=error):
                        raise error
                    case Block(gate=gate):
                        self.blocked += 1
                        self._progress.set()
                        await gate.wait()
                    case Spend(input_tokens=spent_in, output_tokens=spent_out):
                        usage.input_tokens += spent_in
                        usage.output_tokens += spent_out
                        usage.total_tokens += spent_in + spent_out
                    case TextDelta() | ToolCallStarted() | ToolCallArguments() | ToolCallFinished():
                        yield step
            ending = "completed"
        except asyncio.CancelledError:
            ending = "cancelled"
            raise
        except GeneratorExit:
            ending = "closed"
            raise
        finally:
            self.endings.append(ending)
            self._progress.set()


# -- the store -----------------------------------------------------------------------------


class Constraint(Exception):
    """A write a unique index refuses (`SqlTurnStore` lets the `IntegrityError` through)."""


@dataclass
class StoredConversation:
    id: str
    user_id: str
    title: str | None
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]


@dataclass(frozen=True)
class HeldLease:
    holder: str
    expires_at: datetime


class Hold:
    """Where a store call waits (having been `reached`) until the test calls `release()`."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self._released = asyncio.Event()

    async def until_reached(self) -> None:
        await asyncio.wait_for(self.reached.wait(), WAIT_SECONDS)

    def release(self) -> None:
        self._released.set()

    async def pass_through(self) -> None:
        self.reached.set()
        await self._released.wait()


def _key(message: StoredMessage) -> tuple[datetime, str]:
    """The store's order of messages: creation time, ties broken by id."""
    return (message.created_at, message.id)


class InMemoryTurnStore:
    """A `TurnStore` in memory, answering as `SqlTurnStore` does (see the module docstring).

    `clock` tells lease expiry (a test may move it on); timestamps of messages come from the
    turn, as in the SQL store.
    """

    def __init__(self, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.clock = clock
        self.conversations: dict[str, StoredConversation] = {}
        self.leases: dict[str, HeldLease] = {}
        self.commit_attempts = 0
        self.renewals = 0
        self.renewed = asyncio.Event()
        self.interrupted: list[str] = []
        """Calls a cancellation reached while they ran (a transaction cut halfway)."""
        self._messages: dict[str, list[StoredMessage]] = {}
        self._unavailable_commits = 0
        self._holds: dict[str, Hold] = {}

    # -- test controls ---------------------------------------------------------------------

    def fail_commits(self, times: int) -> None:
        """The next `times` commit attempts raise `StoreUnavailable` (a refused connection)."""
        self._unavailable_commits = times

    def hold(self, operation: str) -> Hold:
        """Make every call of `operation` ("commit_turn", "open_turn", ...) wait at its
        start until the hold is released."""
        hold = self._holds[operation] = Hold()
        return hold

    def release_all(self) -> None:
        """Let every held call go on (a test that failed midway may leave one held)."""
        for hold in self._holds.values():
            hold.release()

    def add_conversation(
        self,
        user_id: str,
        history: Iterable[tuple[str, str]] = (),
        *,
        conversation_id: str | None = None,
        request_ids: Sequence[str | None] = (),
    ) -> str:
        """An existing conversation with `(role, content)` messages, a second apart and in
        the past; `request_ids[i]` is message i's request id."""
        conversation_id = conversation_id or new_id("thr")
        start = self.clock() - timedelta(hours=1)
        self.conversations[conversation_id] = StoredConversation(
            conversation_id, user_id, None, start, start, {}
        )
        messages = []
        for index, (role, content) in enumerate(history):
            request_id = request_ids[index] if index < len(request_ids) else None
            messages.append(
                StoredMessage(
                    id=new_id("msg"),
                    conversation_id=conversation_id,
                    role=role,
                    content=content,
                    status="completed",
                    tool_calls=[],
                    usage=None,
                    request_id=request_id,
                    metadata=None,
                    parts=None,
                    created_at=start + timedelta(seconds=index + 1),
                )
            )
        self._messages[conversation_id] = messages
        return conversation_id

    def delete_conversation(self, conversation_id: str) -> None:
        """As the history API deletes one: with its messages and its lease."""
        del self.conversations[conversation_id]
        self._messages.pop(conversation_id, None)
        self.leases.pop(conversation_id, None)

    def messages_of(self, conversation_id: str) -> list[StoredMessage]:
        """The conversation's messages in the store's order."""
        return sorted(self._messages.get(conversation_id, []), key=_key)

    def all_messages(self) -> list[StoredMessage]:
        return sorted((m for ms in self._messages.values() for m in ms), key=_key)

    # -- TurnStore -------------------------------------------------------------------------

    async def open_turn(
        self,
        spec: TurnSpec,
        lease: LeaseTerms,
        *,
        history_limit: int,
        admit: Callable[[], Awaitable[None]],
        what: str,
    ) -> History:
        await self._query("open_turn")
        if self._owned(spec.user_id, lease.conversation_id) is None:
            raise NotFound(f"{what} not found")
        before = self.leases.get(lease.conversation_id)
        now = self.clock()
        if before is not None and before.expires_at >= now:  # taken over only once expired
            raise Busy()
        self.leases[lease.conversation_id] = HeldLease(
            lease.holder, now + timedelta(seconds=lease.ttl_seconds)
        )
        try:
            await admit()
            return self._history(spec, history_limit)
        except BaseException:  # the transaction rolls back: the lease as it was
            if before is None:
                del self.leases[lease.conversation_id]
            else:
                self.leases[lease.conversation_id] = before
            raise

    async def commit_turn(
        self, spec: TurnSpec, outcome: TurnOutcome, lease: LeaseTerms | None
    ) -> bool:
        self.commit_attempts += 1
        await self._query("commit_turn")
        if self._unavailable_commits:
            self._unavailable_commits -= 1
            raise StoreUnavailable("connection refused")
        # Everything is checked before anything is written: one transaction.
        conversation_id = spec.conversation_id
        if spec.new_conversation:
            if conversation_id in self.conversations:
                raise Constraint(f"duplicate conversation id {conversation_id}")
        elif self._owned(spec.user_id, conversation_id) is None:
            return False  # deleted mid-turn
        kept = self.messages_of(conversation_id)
        rows = [_assistant_row(spec, outcome)]
        if spec.retry:
            retried = next((m for m in kept if m.id == spec.user_message_id), None)
            if retried is None:
                return False  # the retried message was deleted mid-turn
            kept = [m for m in kept if _key(m) <= _key(retried)]
        else:
            rows.insert(0, _user_row(spec))
            if spec.request_id is not None and any(
                m.role == "user" and m.request_id == spec.request_id for m in kept
            ):
                raise Constraint(f"request id {spec.request_id} already has a pair")
        taken = {m.id for m in kept} | {
            m.id for other, ms in self._messages.items() if other != conversation_id for m in ms
        }
        if any(row.id in taken for row in rows):
            raise Constraint("duplicate message id")
        if spec.new_conversation:
            self.conversations[conversation_id] = StoredConversation(
                conversation_id,
                spec.user_id,
                spec.title,
                spec.new_conversation_created_at,
                outcome.created_at,
                spec.metadata or {},
            )
        else:
            self.conversations[conversation_id].updated_at = outcome.created_at
        self._messages[conversation_id] = kept + rows
        if lease is not None:
            self._release(lease)
        return True

    async def renew_lease(self, lease: LeaseTerms) -> bool:
        await self._query("renew_lease")
        self.renewals += 1
        self.renewed.set()
        held = self.leases.get(lease.conversation_id)
        if held is None or held.holder != lease.holder:
            return False
        expires_at = self.clock() + timedelta(seconds=lease.ttl_seconds)
        self.leases[lease.conversation_id] = HeldLease(lease.holder, expires_at)
        return True

    async def release_lease(self, lease: LeaseTerms) -> None:
        await self._query("release_lease")
        self._release(lease)

    async def owns(self, user_id: str, conversation_id: str) -> bool:
        await self._query("owns")
        return self._owned(user_id, conversation_id) is not None

    async def stored_reply(self, key: RequestKey) -> StoredReply | None:
        await self._query("stored_reply")
        user_id, conversation_id, request_id = key
        found: list[tuple[StoredMessage, StoredMessage | None]] = []
        for conversation in self.conversations.values():
            if conversation.user_id != user_id:
                continue
            if conversation_id is not None and conversation.id != conversation_id:
                continue
            messages = self.messages_of(conversation.id)
            for index, message in enumerate(messages):
                # Without a conversation id the request started one: only a first message.
                if conversation_id is None and index > 0:
                    break
                if message.role == "user" and message.request_id == request_id:
                    after = messages[index + 1] if index + 1 < len(messages) else None
                    found.append((message, after))
        if not found:
            return None
        request, reply = max(found, key=lambda pair: pair[0].created_at)
        if reply is None or reply.role != "assistant":
            return None
        return StoredReply(request, reply)

    # -- internals -------------------------------------------------------------------------

    async def _query(self, operation: str) -> None:
        """A round trip: held if the test holds `operation`, and always one suspension."""
        try:
            hold = self._holds.get(operation)
            if hold is not None:
                await hold.pass_through()
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.interrupted.append(operation)
            raise

    def _owned(self, user_id: str, conversation_id: str) -> StoredConversation | None:
        conversation = self.conversations.get(conversation_id)
        if conversation is None or conversation.user_id != user_id:
            return None
        return conversation

    def _release(self, lease: LeaseTerms) -> None:
        held = self.leases.get(lease.conversation_id)
        if held is not None and held.holder == lease.holder:
            del self.leases[lease.conversation_id]

    def _history(self, spec: TurnSpec, limit: int) -> History:
        """The newest `limit` messages (before the retried one, on a retry), oldest first."""
        messages = self.messages_of(spec.conversation_id)
        if spec.retry:
            ids = [m.id for m in messages]
            if spec.user_message_id not in ids:
                raise NotFound("item not found")
            messages = messages[: ids.index(spec.user_message_id)]
        chosen = messages[len(messages) - limit :] if limit > 0 else []
        return [(m.role, m.content) for m in chosen]


def _user_row(spec: TurnSpec) -> StoredMessage:
    return StoredMessage(
        id=spec.user_message_id,
        conversation_id=spec.conversation_id,
        role="user",
        content=spec.user_text,
        status="completed",
        tool_calls=[],
        usage=None,
        request_id=spec.request_id,
        metadata=copy.deepcopy(spec.metadata),
        parts=copy.deepcopy(spec.user_parts),
        created_at=spec.started_at,
    )


def _assistant_row(spec: TurnSpec, outcome: TurnOutcome) -> StoredMessage:
    usage = outcome.usage
    return StoredMessage(
        id=outcome.message_id,
        conversation_id=spec.conversation_id,
        role="assistant",
        content=outcome.text.replace("\x00", ""),  # as Postgres text needs it
        status=outcome.status,
        tool_calls=copy.deepcopy(outcome.tool_calls),  # stored as JSON: a copy
        usage={
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        },
        request_id=spec.request_id,
        metadata=None,
        parts=None,
        created_at=outcome.created_at,
    )
