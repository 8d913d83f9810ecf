"""The Vercel AI SDK's chat protocol (`chatrelay.aisdk`), over HTTP: point
`DefaultChatTransport({api: "/ai-sdk/chat"})` here.

`POST /ai-sdk/chat` starts a turn and answers its UI message stream; `GET .../{id}/stream`
is the transport's `reconnectToStream` (the running turn's stream from the start, 204 when
no turn runs or is kept); `GET .../{id}/messages` the stored conversation as `UIMessage`s.
The user comes from the token alone. A client that aborts its fetch only leaves the stream:
the turn runs on and commits; a stop is `POST /api/{user}/conversations/{id}/cancel`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from fastapi.responses import JSONResponse, Response

from chatrelay.aisdk import AI_SDK, STREAM_HEADERS, ChatRequest, stored_reply_parts, turn_spec
from chatrelay.aisdk import ui_messages as as_ui_messages
from chatrelay.logs import current_request_id
from chatrelay.runtime import Runtime
from chatrelay.schemas.errors import ErrorBody
from chatrelay.server.auth import verify_token
from chatrelay.server.deps import AuthorizationHeader, Context
from chatrelay.server.json_body import JsonBodyRoute
from chatrelay.server.routes.chat import turn_stream
from chatrelay.server.sse import stream_response
from chatrelay.server.streams import following
from chatrelay.store import Conversation, Message, transaction
from chatrelay.store.repositories import ConversationRepository, MessageRepository
from chatrelay.turns import NotFound

router = APIRouter(tags=["ai-sdk"], route_class=JsonBodyRoute)

ChatId = Annotated[str, Path(min_length=1, max_length=64)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Not a new user message, or an unsupported one"},
    401: {"model": ErrorBody, "description": "Missing or invalid bearer token"},
    404: {"model": ErrorBody, "description": "The chat id is another user's conversation"},
}
_PAGE = 100


async def _exists(runtime: Runtime, user: str, conversation_id: str) -> bool:
    """Whether the chat is the user's conversation already; `NotFound` when the id is taken
    by another user's (answered as for a missing one elsewhere: no existence oracle)."""
    async with transaction(runtime.sessions) as db:
        if await ConversationRepository(db, user).get(conversation_id) is not None:
            return True
        if await db.get(Conversation, conversation_id) is not None:
            raise NotFound("conversation not found")
    return False


@router.post(
    "/ai-sdk/chat",
    summary="Send the chat's newest user message; the reply is a UI message stream",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "UI message stream parts"},
        **_ERRORS,
    },
)
async def ai_sdk_chat(
    context: Context,
    request: Annotated[ChatRequest, Body()],
    authorization: AuthorizationHeader = None,
) -> Response:
    user = await verify_token(context.verifier, authorization)
    exists = await _exists(context, user, request.id)
    spec = turn_spec(user, request, exists=exists, correlation_id=current_request_id())
    stream = await turn_stream(context, spec, AI_SDK, stored_reply_parts)
    return stream_response(stream, context.settings, STREAM_HEADERS)


@router.get(
    "/ai-sdk/chat/{chat_id}/stream",
    summary="Resume the chat's running turn: its UI message stream from the start",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "UI message stream parts"},
        204: {"description": "No turn is running (or kept) in this chat"},
        404: _ERRORS[404],
    },
)
async def ai_sdk_resume(
    context: Context, chat_id: ChatId, authorization: AuthorizationHeader = None
) -> Response:
    user = await verify_token(context.verifier, authorization)
    try:
        items = await context.turns.replay(chat_id, user, AI_SDK, -1)
    except NotFound:
        return Response(status_code=204)  # a chat with no conversation yet: nothing runs
    if items is None:
        return Response(status_code=204)
    stream = following(chat_id, items, await context.limits.reserve_stream(user))
    return stream_response(stream, context.settings, STREAM_HEADERS)


@router.get(
    "/ai-sdk/chat/{chat_id}/messages",
    summary="The chat's stored messages as AI SDK `UIMessage`s, oldest first",
    responses={404: {"model": ErrorBody, "description": "No such conversation for this user"}},
)
async def ai_sdk_messages(
    context: Context, chat_id: ChatId, authorization: AuthorizationHeader = None
) -> JSONResponse:
    user = await verify_token(context.verifier, authorization)
    rows: list[Message] = []
    async with transaction(context.sessions) as db:
        if await ConversationRepository(db, user).get(chat_id) is None:
            raise NotFound("conversation not found")
        messages, more = MessageRepository(db), True
        while more:
            after = rows[-1].id if rows else None
            page, more = await messages.page(chat_id, _PAGE, "asc", after=after)
            rows.extend(page)
    return JSONResponse(as_ui_messages(rows))
