"""Starting a turn and streaming it: shared by the plain chat API and the ChatKit protocol."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from agents import RunConfig
from sqlmodel.ext.asyncio.session import AsyncSession
from sse_starlette import EventSourceResponse

from chatrelay.server.context import AppContext
from chatrelay.server.errors import NotFound
from chatrelay.server.limits import StreamSlot
from chatrelay.server.sse import frame, sse_response
from chatrelay.server.turn_buffer import Events
from chatrelay.server.turn_lease import TurnLease
from chatrelay.server.turns import Turn, TurnSpec
from chatrelay.store import transaction
from chatrelay.store.repositories import MessageRepository
from chatrelay.store.tables import utcnow


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


TITLE_WORDS, TITLE_CHARS = 8, 60


def title_for(first_message: str) -> str:
    """A new conversation's default title: the first words of its first message."""
    words = first_message.split()
    title = " ".join(words[:TITLE_WORDS])
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip() + "…"
    elif len(words) > TITLE_WORDS:
        title += "…"
    return title


def history_items(messages: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Stored `(role, content)` pairs as Agents SDK input items, oldest first."""
    return [{"role": role, "content": content} for role, content in messages]


async def _history(db: AsyncSession, spec: TurnSpec, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` messages before this turn's user message, oldest first."""
    messages = MessageRepository(db)
    if not spec.retry:
        return history_items(await messages.recent_history(spec.conversation_id, limit))
    retried = await messages.get(spec.conversation_id, spec.user_message_id)
    if retried is None:
        raise NotFound("item not found")
    newest_first = await messages.from_message(spec.conversation_id, retried, "desc", limit + 1)
    return history_items([(m.role, m.content) for m in reversed(newest_first[1:])])


async def launch(
    context: AppContext,
    spec: TurnSpec,
    run_config: RunConfig | None = None,
    *,
    what: str = "conversation",
) -> Turn:
    """Check the user's conversation (404 `{what} not found`), take its lease (409 when busy),
    then start the turn in its own task, owned by the registry, not by the request."""
    lease: TurnLease | None = None
    if spec.new_conversation:
        # Nothing to serialise against: the conversation exists once this turn commits, so
        # until then any other turn naming its id is a 404. No lease, no history, no query.
        await context.limits.count_turn(spec.user_id)
    else:
        lease = TurnLease(
            context.sessions,
            spec.conversation_id,
            holder=spec.assistant_message_id,
            ttl_seconds=context.settings.turn_lease_seconds,
        )
        # One transaction: the lease of the user's conversation (404 when it is not theirs),
        # then the history read under it (the previous turn is committed by now).
        async with transaction(context.sessions) as db:
            await lease.acquire(db, owner=spec.user_id, what=what)
            await context.limits.count_turn(spec.user_id)  # a busy conversation costs no quota
            spec.history = await _history(db, spec, context.settings.history_limit)
    if not spec.retry:
        spec.started_at = utcnow()  # after every message already in the conversation
    turn = Turn(
        spec,
        agent=context.agent,
        run_config=run_config or context.run_config,
        sessions=context.sessions,
        timeout_seconds=context.settings.turn_timeout_seconds,
        lease=lease,
        metrics=context.metrics,
        flush_interval=context.settings.sse_flush_interval_seconds,
    )
    context.turns.start(turn)
    return turn


class _Frames:
    """A turn's SSE frames, holding one of the user's stream slots while they flow."""

    def __init__(self, events: Events, slot: StreamSlot) -> None:
        self._events = events
        self._slot = slot
        slot.release_with(self)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for batch in self._events:
                yield b"".join(frame(sequence, data) for sequence, data in batch)
        finally:
            self._slot.release()


async def launch_streaming(
    context: AppContext, spec: TurnSpec, run_config: RunConfig | None = None, *, what: str
) -> EventSourceResponse:
    """Start a turn whose answer is its stream; 429 before anything starts when the user
    already has too many streams open."""
    slot = context.limits.reserve_stream(spec.user_id)
    try:
        turn = await launch(context, spec, run_config, what=what)
    except BaseException:
        slot.release()
        raise
    return stream_response(context, turn, slot=slot)


def stream_response(
    context: AppContext, turn: Turn, slot: StreamSlot | None = None
) -> EventSourceResponse:
    """The turn's events from the start, live."""
    return events_response(context, turn.spec.user_id, turn.batches(), slot)


def events_response(
    context: AppContext, user_id: str, events: Events, slot: StreamSlot | None = None
) -> EventSourceResponse:
    """Events as SSE frames with their sequence ids (429 when the user has too many streams
    open and no slot was reserved)."""
    slot = slot or context.limits.reserve_stream(user_id)
    # Leaving the frames (a client disconnect) does not touch the turn: it runs on.
    return sse_response(_Frames(events, slot), context.settings)
