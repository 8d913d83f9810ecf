"""`POST /api/{user_id}/chat`: validate, authenticate, start the turn, respond (JSON or SSE)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Header, Path
from fastapi.responses import Response

from chatrelay.schemas import ChatRequest, ChatResponse, TokenUsage, ToolCallRecord
from chatrelay.schemas.chat import ChatBody, ChatKitEnvelope
from chatrelay.schemas.errors import ErrorBody, ServerErrorBody
from chatrelay.server.context import AppContext
from chatrelay.server.deps import AuthorizationHeader, Context, authenticate
from chatrelay.server.errors import Conflict, ServerFault, ServiceUnavailable
from chatrelay.server.limits import StreamSlot
from chatrelay.server.middleware import current_request_id
from chatrelay.server.negotiation import Representation, negotiate
from chatrelay.server.repeats import find_stored, stored_json, stored_stream
from chatrelay.server.routes import chatkit
from chatrelay.server.turn_launch import launch, new_id, stream_response, title_for
from chatrelay.server.turns import Failure, Turn, TurnOutcome, TurnSpec
from chatrelay.store.tables import utcnow

router = APIRouter(tags=["chat"])


async def start_turn(context: AppContext, user_id: str, request: ChatRequest) -> Turn:
    """A new conversation is written by the turn's finalizer, together with its first
    messages; an existing one is checked by `launch()` (another user's answers exactly like a
    missing one: no existence oracle)."""
    is_new = request.conversation_id is None
    spec = TurnSpec(
        user_id=user_id,
        conversation_id=new_id("thr")
        if request.conversation_id is None
        else request.conversation_id,
        new_conversation=is_new,
        conversation_created_at=utcnow() if is_new else None,
        user_text=request.message,
        request_id=request.request_id,
        metadata=request.metadata,
        correlation_id=current_request_id(),
        user_message_id=new_id("msg"),
        assistant_message_id=new_id("msg"),
        title=title_for(request.message) if is_new else None,
    )
    return await launch(context, spec)


def json_reply(turn: Turn, outcome: TurnOutcome) -> ChatResponse:
    if outcome.failure is Failure.STOPPED:
        if not outcome.committed:
            raise Conflict("the turn was stopped before any reply")
    elif outcome.failure is not None:
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
    request: Annotated[ChatBody, Body()],
    authorization: AuthorizationHeader = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response | ChatResponse:
    if isinstance(request, ChatKitEnvelope):  # a ChatKit widget pointed at this URL
        user = authenticate(context, authorization, user_id)
        return await chatkit.handle(context, user, chatkit.parse_envelope(request.model_dump()))
    representation = negotiate(accept)  # the body was validated by FastAPI before we ran
    user = authenticate(context, authorization, user_id)
    if request.request_id is None:
        slot = _reserve_stream(context, user, representation)
        turn = await _start_or_release(context, user, request, slot)
        return await respond(context, turn, representation, slot)
    return await exactly_once(context, user, request, representation)


def _reserve_stream(
    context: AppContext, user: str, representation: Representation
) -> StreamSlot | None:
    """Before any turn starts: a refused stream (429) must not leave a turn running."""
    if representation is Representation.SSE:
        return context.limits.reserve_stream(user)
    return None


async def _start_or_release(
    context: AppContext, user: str, request: ChatRequest, slot: StreamSlot | None
) -> Turn:
    try:
        return await start_turn(context, user, request)
    except BaseException:
        if slot is not None:
            slot.release()
        raise


async def respond(
    context: AppContext,
    turn: Turn,
    representation: Representation,
    slot: StreamSlot | None = None,
) -> Response | ChatResponse:
    if representation is Representation.SSE:
        return stream_response(context, turn, slot=slot)
    # shield(): a client that hangs up cancels this wait, never the turn.
    return json_reply(turn, await asyncio.shield(turn.outcome))


async def exactly_once(
    context: AppContext, user: str, request: ChatRequest, representation: Representation
) -> Response | ChatResponse:
    """Serve a request id once: a repeat attaches to the running turn or gets the stored reply."""
    assert request.request_id is not None
    key = (user, request.conversation_id, request.request_id)
    while (pending := context.claims.claim(key)) is not None:
        running = await asyncio.shield(pending)
        if running is not None:
            return await respond(context, running, representation)
        # The first request ended without a turn: look again (stored by now, or ours to run).
    turn: Turn | None = None
    try:
        stored = await find_stored(context, key)
        if stored is not None:
            if representation is Representation.SSE:
                return stored_stream(context, stored)
            return stored_json(stored)
        slot = _reserve_stream(context, user, representation)
        turn = await _start_or_release(context, user, request, slot)
    finally:
        if turn is None:
            context.claims.abandoned(key)
    context.claims.started(key, turn)
    return await respond(context, turn, representation, slot)
