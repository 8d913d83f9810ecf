"""`POST /api/{user_id}/chat`: validate, authenticate, start the turn, respond (JSON or SSE)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Request
from fastapi.responses import Response

from chatrelay.chatkit import CHATKIT, stored_reply_events
from chatrelay.logs import current_request_id
from chatrelay.runtime import Runtime
from chatrelay.schemas import ChatResponse, TokenUsage, ToolCallRecord
from chatrelay.schemas.chat import ChatBody, ChatKitEnvelope, ChatRequest
from chatrelay.schemas.errors import ErrorBody, ServerErrorBody
from chatrelay.server.deps import AuthorizationHeader, Context, authenticate
from chatrelay.server.errors import ServerFault, ServiceUnavailable
from chatrelay.server.json_body import JsonBodyRoute
from chatrelay.server.negotiation import Representation, negotiate
from chatrelay.server.routes import chatkit
from chatrelay.server.sse import stream_response
from chatrelay.server.streams import Stream, following, known, live
from chatrelay.turns import (
    TURN_EVENTS,
    Attached,
    Conflict,
    Elsewhere,
    Failure,
    Started,
    Stored,
    StoredReply,
    StreamSlot,
    Turn,
    TurnEnded,
    TurnFailed,
    TurnOutcome,
    TurnSpec,
    WireFormat,
)

router = APIRouter(tags=["chat"], route_class=JsonBodyRoute)


def _usage(counts: dict[str, int] | None) -> TokenUsage:
    return TokenUsage.model_validate(counts or {})


def json_reply(spec: TurnSpec, outcome: TurnOutcome, conversation_id: str = "") -> ChatResponse:
    if outcome.failure is Failure.STOPPED:
        if not outcome.committed:
            raise Conflict("the turn was stopped before any reply")
    elif outcome.failure is not None:
        if outcome.failure is Failure.INTERNAL:
            raise ServerFault(outcome.failure.value)
        raise ServiceUnavailable(outcome.failure.value)
    return ChatResponse(
        conversation_id=conversation_id or spec.conversation_id,
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
    http: Request,
    context: Context,
    user_id: Annotated[str, Path(min_length=1, max_length=255)],
    request: Annotated[ChatBody, Body()],
    authorization: AuthorizationHeader = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response | ChatResponse:
    if isinstance(request, ChatKitEnvelope):  # a ChatKit widget pointed at this URL
        user = await authenticate(context, authorization, user_id)
        base_url = chatkit.http_base_url(http)
        return await chatkit.answer(context, user, request.model_dump(), base_url)
    representation = negotiate(accept)  # the body was validated by FastAPI before we ran
    user = await authenticate(context, authorization, user_id)
    if representation is Representation.SSE:
        return stream_response(await chat_stream(context, user, request), context.settings)
    spec = chat_spec(user, request)
    served, _ = await serve_chat(context, spec, stream=False)
    if isinstance(served, Elsewhere):  # a repeat whose turn runs on another instance
        return await reply_elsewhere(context, spec, served)
    if isinstance(served, StoredReply):  # a repeat after its turn was committed: no model run
        return stored_json(served)
    # shield(): a client that hangs up cancels this wait, never the turn.
    return json_reply(served.spec, await asyncio.shield(served.outcome))


def chat_spec(user: str, request: ChatRequest) -> TurnSpec:
    # A new conversation is written by the turn's finalizer, together with its first
    # messages; an existing one is checked by start() (another user's answers exactly like
    # a missing one: no existence oracle).
    return TurnSpec.for_message(
        user,
        request.message,
        conversation_id=request.conversation_id,
        correlation_id=current_request_id(),
        request_id=request.request_id,
        metadata=request.metadata,
    )


async def chat_stream(runtime: Runtime, user: str, request: ChatRequest) -> Stream:
    """A chat body's answer as a stream, whatever the transport (SSE, a WebSocket)."""
    return await turn_stream(runtime, chat_spec(user, request), CHATKIT, stored_reply_events)


async def turn_stream(
    runtime: Runtime,
    spec: TurnSpec,
    wire_format: WireFormat[str],
    stored_items: Callable[[StoredReply], list[str]],
) -> Stream:
    """The spec's turn as a stream of the format's items (a repeated request id: its
    running turn's, or `stored_items` of its committed reply)."""
    served, slot = await serve_chat(runtime, spec, stream=True)
    if isinstance(served, Elsewhere):
        followed = await runtime.turns.exactly_once.follow(spec, served, wire_format)
        if not isinstance(followed, Stored):
            assert slot is not None
            return following(served.conversation_id, followed, slot)
        if slot is not None:
            slot.release()
        served = followed.reply
    if isinstance(served, StoredReply):
        return known(served.reply.conversation_id, stored_items(served))
    assert slot is not None
    return live(served, slot, wire_format=wire_format)


async def reply_elsewhere(runtime: Runtime, spec: TurnSpec, elsewhere: Elsewhere) -> ChatResponse:
    """The JSON reply of a turn running on another instance: its outcome, from its events."""
    followed = await runtime.turns.exactly_once.follow(spec, elsewhere, TURN_EVENTS)
    if isinstance(followed, Stored):
        return stored_json(followed.reply)
    failed: TurnFailed | None = None
    async for batch in followed:
        for _, event in batch:
            if isinstance(event, TurnEnded):
                return json_reply(spec, event.outcome, elsewhere.conversation_id)
            if isinstance(event, TurnFailed):
                failed = event
    # Followed to its end without an outcome: its instance went away, or Redis did.
    raise ServiceUnavailable(failed.message if failed else Failure.UNREACHABLE.value)


async def serve_chat(
    runtime: Runtime, spec: TurnSpec, *, stream: bool
) -> tuple[Turn | StoredReply | Elsewhere, StreamSlot | None]:
    """Start the spec's turn, or (same request id) attach to it or get its stored reply.

    With `stream`, a running turn comes with one of the user's stream slots, reserved before
    any turn starts: a refused stream (429) must not leave a turn running.
    """
    slot: StreamSlot | None = None

    async def start() -> Turn:
        nonlocal slot
        if stream:
            slot = await runtime.limits.reserve_stream(spec.user_id)
        try:
            return await runtime.turns.start(spec)
        except BaseException:
            if slot is not None:
                slot.release()
            raise

    if spec.request_id is None:
        return await start(), slot
    match await runtime.turns.exactly_once.serve(spec, start):
        case Attached(turn=turn):  # a repeat while its turn runs
            return turn, await runtime.limits.reserve_stream(spec.user_id) if stream else None
        case Elsewhere() as elsewhere:  # ... on another instance
            return elsewhere, await runtime.limits.reserve_stream(spec.user_id) if stream else None
        case Started(turn=turn):
            return turn, slot
        case Stored(reply=stored):  # a repeat after its turn was committed: no model run
            return stored, None
