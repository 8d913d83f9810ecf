"""ChatKit's request protocol: `{"type", "params", "metadata"}` envelopes, as a ChatKit widget
sends them, answered on chatrelay's own storage.

Served at `POST /chatkit` (the user comes from the token alone) and on the chat endpoint
(a body with `type`). Streaming requests answer ChatKit events over SSE; the others JSON.
"""

from __future__ import annotations

import json
from typing import Any, assert_never, get_args

from chatkit.types import (
    AttachmentsCreateReq,
    AttachmentsDeleteReq,
    ChatKitReq,
    InputTranscribeReq,
    ItemsFeedbackReq,
    ItemsListReq,
    NonStreamingReq,
    Page,
    StreamingReq,
    Thread,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsDeleteReq,
    ThreadsGetByIdReq,
    ThreadsListReq,
    ThreadsRetryAfterItemReq,
    ThreadsSyncCustomActionReq,
    ThreadsUpdateReq,
    is_streaming_req,
)
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, TypeAdapter, ValidationError

from chatrelay.server.auth import verify_token
from chatrelay.server.chatkit_items import clamp_limit, items_page, message_id_of, thread_of
from chatrelay.server.chatkit_turns import start_chatkit_turn
from chatrelay.server.context import AppContext
from chatrelay.server.deps import AuthorizationHeader, Context, owned_conversation
from chatrelay.server.errors import BadRequest, NotFound
from chatrelay.store import Conversation, transaction
from chatrelay.store.repositories import (
    ConversationRepository,
    FeedbackRepository,
    MessageRepository,
)

router = APIRouter(tags=["chatkit"])

CHATKIT_REQUEST: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)
KNOWN_TYPES = frozenset(
    model.model_fields["type"].default for model in get_args(get_args(ChatKitReq)[0])
)


def _json(model: BaseModel | dict[str, Any]) -> Response:
    body = (
        model.model_dump_json(by_alias=True, exclude_none=True)
        if isinstance(model, BaseModel)
        else json.dumps(model)
    )
    return Response(body, media_type="application/json")


def decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # invalid JSON or invalid UTF-8
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": str(exc), "input": None}]
        ) from exc


def parse_envelope(body: Any) -> ChatKitReq:
    """The typed request; 400 naming an unknown type, 422 with details for bad params."""
    kind = body.get("type") if isinstance(body, dict) else None
    if not isinstance(kind, str) or kind not in KNOWN_TYPES:
        raise BadRequest(f"unsupported ChatKit request type {kind!r}")
    try:
        return CHATKIT_REQUEST.validate_python(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc


async def handle(context: AppContext, user_id: str, request: ChatKitReq) -> Response:
    if is_streaming_req(request):
        return await _stream(context, user_id, request)
    return await _answer(context, user_id, request)


async def _stream(context: AppContext, user_id: str, request: StreamingReq) -> Response:
    match request:
        case ThreadsCreateReq() | ThreadsAddUserMessageReq() | ThreadsRetryAfterItemReq():
            return await start_chatkit_turn(context, user_id, request)
        case ThreadsAddClientToolOutputReq():
            raise BadRequest(
                "threads.add_client_tool_output: this server defines no client tools, "
                "so no thread has a pending client tool call"
            )
        case ThreadsAddStructuredInputReq() | ThreadsCustomActionReq():
            raise BadRequest(f"{request.type}: this server defines no widgets or actions")
        case _:
            assert_never(request)


async def _answer(context: AppContext, user_id: str, request: NonStreamingReq) -> Response:
    async with transaction(context.sessions) as db:
        conversations = ConversationRepository(db, user_id)

        async def owned(thread_id: str) -> Conversation:
            return await owned_conversation(db, user_id, thread_id, what="thread")

        match request:
            case ThreadsGetByIdReq(params=params):
                conversation = await owned(params.thread_id)
                items = await items_page(
                    db, conversation.id, limit=clamp_limit(None), order="asc", after=None
                )
                return _json(thread_of(conversation, items))
            case ThreadsListReq(params=params):
                try:
                    rows, has_more = await conversations.page(
                        clamp_limit(params.limit), params.order, params.after
                    )
                except LookupError:
                    raise NotFound("cursor not found") from None
                threads = [thread_of(row) for row in rows]
                after = threads[-1].id if threads and has_more else None
                return _json(Page[Thread](data=threads, has_more=has_more, after=after))
            case ItemsListReq(params=params):
                conversation = await owned(params.thread_id)
                try:
                    page = await items_page(
                        db,
                        conversation.id,
                        limit=clamp_limit(params.limit),
                        order=params.order,
                        after=params.after,
                    )
                except LookupError:
                    raise NotFound("cursor not found") from None
                return _json(page)
            case ItemsFeedbackReq(params=params):
                conversation = await owned(params.thread_id)
                messages = MessageRepository(db)
                for item_id in params.item_ids:
                    if await messages.get(conversation.id, message_id_of(item_id)) is None:
                        raise NotFound(f"item {item_id} not found")
                await FeedbackRepository(db).record(conversation.id, params.item_ids, params.kind)
                return _json({})
            case ThreadsUpdateReq(params=params):
                title = params.title.strip()[:200] or None
                conversation = await conversations.rename(await owned(params.thread_id), title)
                return _json(thread_of(conversation))
            case ThreadsDeleteReq(params=params):
                await conversations.delete(await owned(params.thread_id))
                return _json({})
            case (
                AttachmentsCreateReq()
                | AttachmentsDeleteReq()
                | InputTranscribeReq()
                | ThreadsSyncCustomActionReq()
            ):
                raise BadRequest(f"{request.type} is not supported by this server")
            case _:
                assert_never(request)


@router.post(
    "/chatkit",
    summary="ChatKit's protocol endpoint: point a ChatKit widget's `api.url` here",
    responses={
        200: {"description": "JSON, or `text/event-stream` for streaming request types"},
        400: {"description": "An unsupported request type or input"},
        401: {"description": "Missing or invalid bearer token"},
        404: {"description": "No such thread, item or cursor for this user"},
    },
)
async def chatkit_endpoint(
    request: Request, context: Context, authorization: AuthorizationHeader = None
) -> Response:
    user_id = verify_token(context.settings, authorization)
    return await handle(context, user_id, parse_envelope(decode_json(await request.body())))
