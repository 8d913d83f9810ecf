"""`POST /api/{user_id}/chat`: validate, authenticate, start the turn, respond (JSON or SSE)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Header, Path
from fastapi.responses import Response

from chatrelay.chatkit import CHATKIT, stored_reply_events
from chatrelay.logs import current_request_id
from chatrelay.runtime import Runtime
from chatrelay.schemas import ChatResponse, TokenUsage, ToolCallRecord
from chatrelay.schemas.chat import ChatBody, ChatKitEnvelope
from chatrelay.schemas.errors import ErrorBody, ServerErrorBody
from chatrelay.server.deps import AuthorizationHeader, Context, authenticate
from chatrelay.server.errors import ServerFault, ServiceUnavailable
from chatrelay.server.json_body import JsonBodyRoute
from chatrelay.server.negotiation import Representation, negotiate
from chatrelay.server.routes import chatkit
from chatrelay.server.sse import items_response, stream_response
from chatrelay.turns import (
    Attached,
    Conflict,
    Failure,
    Started,
    Stored,
    StoredReply,
    StreamSlot,
    Turn,
    TurnOutcome,
    TurnSpec,
)

router = APIRouter(tags=["chat"], route_class=JsonBodyRoute)


def _usage(counts: dict[str, int] | None) -> TokenUsage:
    return TokenUsage.model_validate(counts or {})


def json_reply(spec: TurnSpec, outcome: TurnOutcome) -> ChatResponse:
    if outcome.failure is Failure.STOPPED:
        if not outcome.committed:
            raise Conflict("the turn was stopped before any reply")
    elif outcome.failure is not None:
        if outcome.failure is Failure.INTERNAL:
            raise ServerFault(outcome.failure.value)
        raise ServiceUnavailable(outcome.failure.value)
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


def stored_json(stored: StoredReply) -> ChatResponse:
    reply = stored.reply
    return ChatResponse(
        conversation_id=reply.conversation_id,
        message_id=reply.id,
        message=reply.content,
        response=reply.content,
        created_at=reply.created_at,
        tool_calls=[ToolCallRecord.model_validate(call) for call in reply.tool_calls],
        usage=_usage(reply.usage),
        request_id=stored.request.request_id,
        metadata=stored.request.metadata,
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
        return await chatkit.answer(context, user, request.model_dump())
    representation = negotiate(accept)  # the body was validated by FastAPI before we ran
    user = authenticate(context, authorization, user_id)
    # A new conversation is written by the turn's finalizer, together with its first
    # messages; an existing one is checked by start() (another user's answers exactly like
    # a missing one: no existence oracle).
    spec = TurnSpec.for_message(
        user,
        request.message,
        conversation_id=request.conversation_id,
        correlation_id=current_request_id(),
        request_id=request.request_id,
        metadata=request.metadata,
    )
    slot: StreamSlot | None = None

    async def start() -> Turn:
        nonlocal slot
        # Before any turn starts: a refused stream (429) must not leave a turn running.
        if representation is Representation.SSE:
            slot = context.limits.reserve_stream(user)
        try:
            return await context.turns.start(spec)
        except BaseException:
            if slot is not None:
                slot.release()
            raise

    if request.request_id is None:
        return await respond(context, await start(), representation, slot)
    key = (user, request.conversation_id, request.request_id)
    match await context.turns.exactly_once.serve(key, start):
        case Attached(turn=turn):  # a repeat while its turn runs
            return await respond(context, turn, representation)
        case Started(turn=turn):
            return await respond(context, turn, representation, slot)
        case Stored(reply=stored):  # a repeat after its turn was committed: no model run
            if representation is Representation.SSE:
                return items_response(stored_reply_events(stored), context.settings)
            return stored_json(stored)


async def respond(
    runtime: Runtime,
    turn: Turn,
    representation: Representation,
    slot: StreamSlot | None = None,
) -> Response | ChatResponse:
    if representation is Representation.SSE:
        slot = slot or runtime.limits.reserve_stream(turn.spec.user_id)
        return stream_response(turn.batches(CHATKIT), slot, runtime.settings)
    # shield(): a client that hangs up cancels this wait, never the turn.
    return json_reply(turn.spec, await asyncio.shield(turn.outcome))
