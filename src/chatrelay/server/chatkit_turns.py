"""Turns started by ChatKit requests: a new thread, a new message, or a retry."""

from __future__ import annotations

import dataclasses
from typing import Any, assert_never

from agents import ModelSettings, RunConfig
from chatkit.types import (
    InferenceOptions,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsRetryAfterItemReq,
    UserMessageInput,
)
from fastapi.responses import Response

from chatrelay.schemas.chat import MAX_MESSAGE_CHARS
from chatrelay.server.context import AppContext
from chatrelay.server.deps import owned_conversation
from chatrelay.server.errors import BadRequest, NotFound
from chatrelay.server.middleware import current_request_id
from chatrelay.server.turn_launch import launch_streaming, new_id, title_for
from chatrelay.server.turns import TurnSpec
from chatrelay.store import transaction
from chatrelay.store.repositories import MessageRepository
from chatrelay.store.tables import as_utc, utcnow

ChatKitTurnRequest = ThreadsCreateReq | ThreadsAddUserMessageReq | ThreadsRetryAfterItemReq


def input_text(user_input: UserMessageInput) -> str:
    """What the model reads: the text and tags as typed, after the quoted text if any."""
    text = "".join(part.text for part in user_input.content).strip()
    if user_input.quoted_text:
        text = f"(Quoting: {user_input.quoted_text.strip()})\n\n{text}"
    return text


def input_parts(user_input: UserMessageInput) -> dict[str, Any]:
    """The input as stored, so the user item is rebuilt exactly on reload."""
    return {
        "content": [part.model_dump(mode="json") for part in user_input.content],
        "quoted_text": user_input.quoted_text,
        "inference_options": user_input.inference_options.model_dump(
            mode="json", exclude_none=True
        ),
    }


def checked_text(user_input: UserMessageInput) -> str:
    if user_input.attachments:
        raise BadRequest("attachments are not supported by this server yet")
    text = input_text(user_input)
    if not text:
        raise BadRequest("the message is empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise BadRequest(f"the message is longer than {MAX_MESSAGE_CHARS} characters")
    if "\x00" in text:
        raise BadRequest("the message contains NUL characters")
    return text


def run_config_for(context: AppContext, options: InferenceOptions) -> RunConfig:
    """Honour the widget's model pick when allowed, and its tool choice."""
    config = context.run_config
    if options.model and options.model != context.settings.model:
        if options.model not in context.settings.model_allowlist:
            raise BadRequest(f"model {options.model!r} is not allowed on this server")
        config = dataclasses.replace(config, model=options.model)
    if options.tool_choice is not None:
        config = dataclasses.replace(
            config, model_settings=ModelSettings(tool_choice=options.tool_choice.id)
        )
    return config


async def start_chatkit_turn(
    context: AppContext, user_id: str, request: ChatKitTurnRequest
) -> Response:
    base: dict[str, Any] = {
        "user_id": user_id,
        "request_id": None,
        "metadata": request.metadata or None,
        "correlation_id": current_request_id(),
        "assistant_message_id": new_id("msg"),
        "stream_options": True,
    }
    match request:
        case ThreadsCreateReq(params=params):
            text = checked_text(params.input)
            config = run_config_for(context, params.input.inference_options)
            spec = TurnSpec(
                **base,
                conversation_id=new_id("thr"),
                new_conversation=True,
                conversation_created_at=utcnow(),
                user_text=text,
                user_message_id=new_id("msg"),
                user_parts=input_parts(params.input),
                title=title_for(text),
            )
        case ThreadsAddUserMessageReq(params=params):
            text = checked_text(params.input)
            config = run_config_for(context, params.input.inference_options)
            spec = TurnSpec(  # launch() checks the thread is the user's
                **base,
                conversation_id=params.thread_id,
                new_conversation=False,
                user_text=text,
                user_message_id=new_id("msg"),
                user_parts=input_parts(params.input),
            )
        case ThreadsRetryAfterItemReq(params=params):
            async with transaction(context.sessions) as db:
                conversation = await owned_conversation(
                    db, user_id, params.thread_id, what="thread"
                )
                messages = MessageRepository(db)
                retried = await messages.get(conversation.id, params.item_id)
                if retried is None:
                    raise NotFound("item not found")
                if retried.role != "user":
                    raise BadRequest(f"item {params.item_id} is not a user message")
            options = InferenceOptions.model_validate(
                (retried.parts or {}).get("inference_options") or {}
            )
            config = run_config_for(context, options)
            spec = TurnSpec(
                **base,
                conversation_id=conversation.id,
                new_conversation=False,
                user_text=retried.content,
                user_message_id=retried.id,
                started_at=as_utc(retried.created_at),
                retry=True,
            )
        case _:
            assert_never(request)
    return await launch_streaming(context, spec, config, what="thread")
