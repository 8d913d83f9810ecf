"""ChatKit's request protocol: `{"type", "params", "metadata"}` envelopes, as a ChatKit widget
sends them, answered on chatrelay's own storage.

`handle()` takes a typed request and returns what to answer, whatever the transport: a
`StreamAnswer` (the turn to stream, in the `CHATKIT` format) for streaming requests, a
`JsonAnswer` for the others. Errors are the turn core's domain errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import Any, assert_never

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
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.attachments import AttachmentService, ref_of
from chatrelay.chatkit.attachments import as_chatkit, attachment_ids, stored_attachments
from chatrelay.chatkit.items import clamp_limit, items_page, message_id_of, thread_of
from chatrelay.chatkit.requests import (
    checked_text,
    input_parts,
    stored_options,
    turn_options,
)
from chatrelay.config import Settings
from chatrelay.store import Attachment, Conversation, transaction
from chatrelay.store.repositories import (
    ConversationRepository,
    FeedbackRepository,
    MessageRepository,
)
from chatrelay.store.tables import as_utc
from chatrelay.turns import (
    Invalid,
    NotFound,
    StreamSlot,
    Turn,
    TurnService,
    TurnSpec,
    new_id,
    title_for,
)


@dataclass(frozen=True)
class StreamAnswer:
    """Stream this turn's events; `slot` is the user's stream slot, held until it ends."""

    turn: Turn
    slot: StreamSlot


@dataclass(frozen=True)
class JsonAnswer:
    body: str


def _json(model: BaseModel | dict[str, Any]) -> JsonAnswer:
    if isinstance(model, BaseModel):
        return JsonAnswer(model.model_dump_json(by_alias=True, exclude_none=True))
    return JsonAnswer(json.dumps(model))


_FIRST_PAGE: dict[str, Any] = {"limit": clamp_limit(None), "order": "asc", "after": None}
"""The items `threads.get_by_id` answers with."""


class ChatKitProtocol:
    def __init__(
        self,
        service: TurnService,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        attachments: AttachmentService,
    ) -> None:
        self._service = service
        self._sessions = sessions
        self._default_model = settings.model
        self._attachments = attachments
        self._public_url = settings.public_url

    async def handle(
        self,
        user_id: str,
        request: ChatKitReq,
        correlation_id: str,
        base_url: str = "http://localhost",
    ) -> StreamAnswer | JsonAnswer:
        """The answer to `request`; `base_url` is where the request came in (the links this
        answers with point there, unless `PUBLIC_URL` says otherwise)."""
        base_url = self._public_url or base_url
        if is_streaming_req(request):
            return await self._stream(user_id, request, correlation_id, base_url)
        match request:
            case AttachmentsCreateReq(params=params):
                row = await self._attachments.create(
                    user_id, params.name, params.size, params.mime_type
                )
                return _json(as_chatkit(row, self._attachments, base_url, upload=True))
            case AttachmentsDeleteReq(params=params):
                await self._attachments.delete(user_id, params.attachment_id)
                return _json({})
        return await self._answer(user_id, request, base_url)

    def uploaded(self, row: Attachment, base_url: str) -> str:
        """An uploaded attachment's JSON, as ChatKit shows it (the upload route's answer)."""
        chatkit = as_chatkit(row, self._attachments, self._public_url or base_url, upload=False)
        return _json(chatkit).body

    async def _stream(
        self, user_id: str, request: StreamingReq, correlation_id: str, base_url: str
    ) -> StreamAnswer:
        match request:
            case ThreadsCreateReq() | ThreadsAddUserMessageReq() | ThreadsRetryAfterItemReq():
                spec = await self._spec(user_id, request, correlation_id, base_url)
            case ThreadsAddClientToolOutputReq():
                raise Invalid(
                    "threads.add_client_tool_output: this server defines no client tools, "
                    "so no thread has a pending client tool call"
                )
            case ThreadsAddStructuredInputReq() | ThreadsCustomActionReq():
                raise Invalid(f"{request.type}: this server defines no widgets or actions")
            case _:
                assert_never(request)
        # Before the turn starts: a refused stream must not leave a turn running.
        slot = await self._service.limits.reserve_stream(user_id)
        try:
            turn = await self._service.start(spec, what="thread")
        except BaseException:
            slot.release()
            raise
        return StreamAnswer(turn, slot)

    async def _spec(
        self,
        user_id: str,
        request: ThreadsCreateReq | ThreadsAddUserMessageReq | ThreadsRetryAfterItemReq,
        correlation_id: str,
        base_url: str,
    ) -> TurnSpec:
        match request:
            case ThreadsCreateReq(params=params) | ThreadsAddUserMessageReq(params=params):
                text = checked_text(params.input)
                options = turn_options(params.input.inference_options, self._default_model)
                self._service.check_model(options["model"])
                sent = await self._attachments.for_message(user_id, params.input.attachments)
                spec = TurnSpec.for_message(
                    user_id,
                    text,
                    # A new thread, or the user's (start() checks it is theirs).
                    conversation_id=getattr(params, "thread_id", None),
                    correlation_id=correlation_id,
                    metadata=request.metadata or None,
                    user_parts=input_parts(
                        params.input, stored_attachments(sent, self._attachments, base_url)
                    ),
                    offer_stop=True,
                    attachments=tuple(ref_of(row) for row in sent),
                    edge="chatkit",
                    **options,
                )
                if spec.new_conversation and not spec.title:  # attachments, no text
                    spec.title = title_for(", ".join(row.name for row in sent))
                return spec
            case ThreadsRetryAfterItemReq(params=params):
                return await self._retry_spec(
                    user_id, params.thread_id, params.item_id, request.metadata, correlation_id
                )
            case _:
                assert_never(request)

    async def _retry_spec(
        self,
        user_id: str,
        thread_id: str,
        item_id: str,
        metadata: dict[str, Any],
        correlation_id: str,
    ) -> TurnSpec:
        async with transaction(self._sessions) as db:
            conversation = await _owned(db, user_id, thread_id)
            retried = await MessageRepository(db).get(conversation.id, item_id)
            if retried is None:
                raise NotFound("item not found")
            if retried.role != "user":
                raise Invalid(f"item {item_id} is not a user message")
        options = turn_options(stored_options(retried.parts), self._default_model)
        self._service.check_model(options["model"])
        return TurnSpec(
            user_id=user_id,
            conversation_id=conversation.id,
            new_conversation=False,
            user_text=retried.content,
            request_id=None,
            metadata=metadata or None,
            correlation_id=correlation_id,
            user_message_id=retried.id,
            assistant_message_id=new_id("msg"),
            started_at=as_utc(retried.created_at),
            offer_stop=True,
            retry=True,
            edge="chatkit",
            attachments=await self._attachments.refs(user_id, attachment_ids(retried.parts)),
            **options,
        )

    async def _answer(self, user_id: str, request: NonStreamingReq, base_url: str) -> JsonAnswer:
        preview = partial(self._attachments.link, base_url, "preview")
        async with transaction(self._sessions) as db:
            conversations = ConversationRepository(db, user_id)
            match request:
                case ThreadsGetByIdReq(params=params):
                    conversation = await _owned(db, user_id, params.thread_id)
                    first = await items_page(db, conversation.id, **_FIRST_PAGE, preview=preview)
                    return _json(thread_of(conversation, first))
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
                    conversation = await _owned(db, user_id, params.thread_id)
                    try:
                        page = await items_page(
                            db,
                            conversation.id,
                            limit=clamp_limit(params.limit),
                            order=params.order,
                            after=params.after,
                            preview=preview,
                        )
                    except LookupError:
                        raise NotFound("cursor not found") from None
                    return _json(page)
                case ItemsFeedbackReq(params=params):
                    conversation = await _owned(db, user_id, params.thread_id)
                    messages = MessageRepository(db)
                    for item_id in params.item_ids:
                        if await messages.get(conversation.id, message_id_of(item_id)) is None:
                            raise NotFound(f"item {item_id} not found")
                    await FeedbackRepository(db).record(
                        conversation.id, params.item_ids, params.kind
                    )
                    return _json({})
                case ThreadsUpdateReq(params=params):
                    title = params.title.strip()[:200] or None
                    owned = await _owned(db, user_id, params.thread_id)
                    return _json(thread_of(await conversations.rename(owned, title)))
                case ThreadsDeleteReq(params=params):
                    await conversations.delete(await _owned(db, user_id, params.thread_id))
                    return _json({})
                case AttachmentsCreateReq() | AttachmentsDeleteReq():
                    raise AssertionError("answered by handle()")
                case InputTranscribeReq() | ThreadsSyncCustomActionReq():
                    raise Invalid(f"{request.type} is not supported by this server")
                case _:
                    assert_never(request)


async def _owned(db: AsyncSession, user_id: str, thread_id: str) -> Conversation:
    """The user's thread, or `NotFound`: another user's answers exactly like a missing one."""
    conversation = await ConversationRepository(db, user_id).get(thread_id)
    if conversation is None:
        raise NotFound("thread not found")
    return conversation
