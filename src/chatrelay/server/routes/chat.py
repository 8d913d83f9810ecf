"""`POST /api/{user_id}/chat`: validate, authenticate, resolve conversation, run, respond."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path
from fastapi.responses import Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from chatrelay.schemas import ChatRequest, ChatResponse, TokenUsage, ToolCallRecord
from chatrelay.schemas.errors import ErrorBody, ServerErrorBody
from chatrelay.server.context import AppContext
from chatrelay.server.deps import AuthorizationHeader, Context, authenticate
from chatrelay.server.errors import NotFound, ServerFault, ServiceUnavailable
from chatrelay.server.middleware import current_request_id
from chatrelay.server.negotiation import Representation, negotiate
from chatrelay.server.turns import Failure, Turn, TurnOutcome, TurnSpec
from chatrelay.store import Message, transaction
from chatrelay.store.repositories import ConversationRepository, MessageRepository
from chatrelay.store.tables import as_utc, utcnow

router = APIRouter(tags=["chat"])

CONVERSATION_NOT_FOUND = "conversation not found"


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


@dataclass
class ResolvedConversation:
    conversation_id: str
    created_at: datetime
    is_new: bool
    history: list[dict[str, Any]]


def history_items(messages: list[Message]) -> list[dict[str, Any]]:
    """Stored messages as Agents SDK input items, oldest first."""
    return [{"role": message.role, "content": message.content} for message in messages]


async def resolve_conversation(
    context: AppContext, user_id: str, request: ChatRequest
) -> ResolvedConversation:
    """Load the user's conversation and its recent history, or name a new conversation.

    A new conversation is written by the turn's finalizer, together with its first messages.
    Another user's conversation answers exactly like a missing one (no existence oracle).
    """
    if request.conversation_id is None:
        return ResolvedConversation(new_id("thr"), utcnow(), True, [])
    async with transaction(context.sessions) as db:
        existing = await ConversationRepository(db, user_id).get(request.conversation_id)
        if existing is None:
            raise NotFound(CONVERSATION_NOT_FOUND)
        recent = await MessageRepository(db).recent(existing.id, context.settings.history_limit)
        return ResolvedConversation(
            existing.id, as_utc(existing.created_at), False, history_items(recent)
        )


def start_turn(
    context: AppContext, user_id: str, request: ChatRequest, resolved: ResolvedConversation
) -> Turn:
    spec = TurnSpec(
        user_id=user_id,
        conversation_id=resolved.conversation_id,
        new_conversation=resolved.is_new,
        conversation_created_at=resolved.created_at,
        user_text=request.message,
        history=resolved.history,
        request_id=request.request_id,
        metadata=request.metadata,
        correlation_id=current_request_id(),
        user_message_id=new_id("msg"),
        assistant_message_id=new_id("msg"),
        title=title_for(request.message) if resolved.is_new else None,
    )
    turn = Turn(
        spec,
        agent=context.agent,
        run_config=context.run_config,
        sessions=context.sessions,
        timeout_seconds=context.settings.turn_timeout_seconds,
    )
    context.turns.start(turn)
    return turn


async def _sse_frames(turn: Turn) -> AsyncIterator[ServerSentEvent]:
    async for sequence, data in turn.events():
        yield ServerSentEvent(data=data, id=str(sequence))


def stream_response(context: AppContext, turn: Turn) -> EventSourceResponse:
    # Leaving this generator (a client disconnect) does not touch the turn: it runs on.
    return EventSourceResponse(
        _sse_frames(turn),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        ping=context.settings.sse_ping_seconds,
        send_timeout=context.settings.sse_send_timeout_seconds,
    )


def json_reply(turn: Turn, outcome: TurnOutcome) -> ChatResponse:
    if outcome.failure is not None:
        if outcome.failure is Failure.INTERNAL:
            raise ServerFault(outcome.failure.value)
        raise ServiceUnavailable(outcome.failure.value)
    spec = turn.spec
    return ChatResponse(
        conversation_id=spec.conversation_id,
        message_id=outcome.message_id,
        message=outcome.text,
        response=outcome.text,
        created_at=outcome.created_at,
        tool_calls=[ToolCallRecord.model_validate(call) for call in outcome.tool_calls],
        usage=TokenUsage(
            input_tokens=outcome.usage.input_tokens,
            output_tokens=outcome.usage.output_tokens,
            total_tokens=outcome.usage.total_tokens,
        ),
        request_id=spec.request_id,
        metadata=spec.metadata,
    )


_SSE_EXAMPLE = (
    'id: 0\ndata: {"type":"thread.created","thread":{...}}\n\n'
    'id: 1\ndata: {"type":"thread.item.done","item":{"type":"user_message",...}}\n\n'
    'id: 2\ndata: {"type":"thread.item.added","item":{"type":"assistant_message",...}}\n\n'
    'id: 4\ndata: {"type":"thread.item.updated","item_id":"msg_...","update":'
    '{"type":"assistant_message.content_part.text_delta","content_index":0,"delta":"Hi "}}\n\n'
)


@router.post(
    "/api/{user_id}/chat",
    summary="Send a message; the reply comes as JSON or as ChatKit Server-Sent Events",
    response_model=ChatResponse,
    responses={
        200: {
            "description": "`application/json`: the complete reply. `text/event-stream`: "
            "ChatKit `ThreadStreamEvent`s as they happen.",
            "content": {"text/event-stream": {"example": _SSE_EXAMPLE}},
        },
        401: {"model": ErrorBody, "description": "Missing or invalid bearer token"},
        403: {"model": ErrorBody, "description": "The token belongs to another user"},
        404: {"model": ErrorBody, "description": "No such conversation for this user"},
        406: {"model": ErrorBody, "description": "Neither JSON nor SSE is acceptable"},
        500: {"model": ServerErrorBody, "description": "Server fault"},
        503: {"model": ServerErrorBody, "description": "Model or database unavailable"},
    },
)
async def chat(
    context: Context,
    user_id: Annotated[str, Path(min_length=1, max_length=255)],
    request: Annotated[ChatRequest, Body()],
    authorization: AuthorizationHeader = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response | ChatResponse:
    representation = negotiate(accept)  # the body was validated by FastAPI before we ran
    user = authenticate(context, authorization, user_id)
    resolved = await resolve_conversation(context, user, request)
    turn = start_turn(context, user, request, resolved)
    if representation is Representation.SSE:
        return stream_response(context, turn)
    # shield(): a client that hangs up cancels this wait, never the turn.
    return json_reply(turn, await asyncio.shield(turn.outcome))
