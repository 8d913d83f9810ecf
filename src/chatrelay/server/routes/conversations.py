"""Per-conversation controls: an explicit stop of the running turn, and resuming its stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel

from chatrelay.chatkit import CHATKIT
from chatrelay.runtime import Runtime
from chatrelay.schemas.errors import ErrorBody
from chatrelay.server.deps import AuthorizationHeader, Context, authenticate
from chatrelay.server.sse import stream_response
from chatrelay.server.streams import Stream, following
from chatrelay.turns import Invalid

router = APIRouter(tags=["chat"])

STOP_WAIT_SECONDS = 10.0


class Stopped(BaseModel):
    """The stopped turn, once finalized: its partial reply is stored with status `cancelled`."""

    conversation_id: str
    message_id: str | None
    """The partial reply's id, or null when the model had produced nothing yet."""
    status: str


@router.post(
    "/api/{user_id}/conversations/{conversation_id}/cancel",
    summary="Stop the conversation's running turn (a closed stream is not a stop)",
    responses={
        404: {"model": ErrorBody, "description": "No such conversation for this user"},
        409: {"model": ErrorBody, "description": "No turn is running in this conversation"},
    },
)
async def cancel(
    context: Context,
    user_id: Annotated[str, Path(min_length=1, max_length=255)],
    conversation_id: Annotated[str, Path(min_length=1, max_length=64)],
    authorization: AuthorizationHeader = None,
) -> Stopped:
    user = await authenticate(context, authorization, user_id)
    return await stop_turn(context, user, conversation_id)


async def stop_turn(runtime: Runtime, user: str, conversation_id: str) -> Stopped:
    """Stop the user's running turn in the conversation, whatever the transport."""
    # The stream ends with its final events; answer once the partial reply is stored.
    outcome = await runtime.turns.stop(conversation_id, user, wait_seconds=STOP_WAIT_SECONDS)
    if outcome is None:  # the stop is under way; its reply is saved when the commit ends
        return Stopped(conversation_id=conversation_id, message_id=None, status="stopping")
    return Stopped(
        conversation_id=conversation_id,
        message_id=outcome.message_id if outcome.committed else None,
        status=outcome.status if outcome.committed else "nothing to keep",
    )


@router.get(
    "/api/{user_id}/conversations/{conversation_id}/stream",
    summary="Resume a turn's stream after `Last-Event-ID` (header or `last_event_id` query)",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The events after the id"},
        204: {"description": "No running turn, and the last one's events have expired"},
        404: {"model": ErrorBody, "description": "No such conversation for this user"},
    },
)
async def resume(
    context: Context,
    user_id: Annotated[str, Path(min_length=1, max_length=255)],
    conversation_id: Annotated[str, Path(min_length=1, max_length=64)],
    authorization: AuthorizationHeader = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[str | None, Query()] = None,
) -> Response:
    user = await authenticate(context, authorization, user_id)
    stream = await resume_stream(
        context, user, conversation_id, sequence_id(last_event_id_header or last_event_id)
    )
    if stream is None:
        return Response(status_code=204)
    return stream_response(stream, context.settings)


async def resume_stream(
    runtime: Runtime, user: str, conversation_id: str, after: int
) -> Stream | None:
    """The conversation's latest turn's events after id `after`, then the live rest; None
    when there is nothing to resume (no running turn, and the last one's events expired)."""
    items = await runtime.turns.replay(conversation_id, user, CHATKIT, after)
    if items is None:
        return None
    return following(conversation_id, items, await runtime.limits.reserve_stream(user))


def sequence_id(value: str | None) -> int:
    """A `Last-Event-ID` as the item id to resume after (-1: from the start)."""
    if value is None or not value.strip():
        return -1
    try:
        sequence = int(value)
    except ValueError:
        raise Invalid("Last-Event-ID must be an event id of this stream") from None
    if sequence < -1:
        raise Invalid("Last-Event-ID must be an event id of this stream")
    return sequence
