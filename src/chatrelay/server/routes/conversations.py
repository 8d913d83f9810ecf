"""Per-conversation controls: an explicit stop of the running turn."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel

from chatrelay.schemas.errors import ErrorBody
from chatrelay.server.deps import AuthorizationHeader, Context, authenticate
from chatrelay.server.errors import Conflict, NotFound
from chatrelay.store import transaction
from chatrelay.store.repositories import ConversationRepository

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
    user = authenticate(context, authorization, user_id)
    running = context.turns.running_turn(conversation_id)
    if running is None or running.spec.user_id != user:
        async with transaction(context.sessions) as db:
            if await ConversationRepository(db, user).get(conversation_id) is None:
                raise NotFound("conversation not found")
        raise Conflict("no turn is running in this conversation")
    context.turns.stop(conversation_id)
    # The stream ends with its final events; answer once the partial reply is stored.
    outcome = await asyncio.wait_for(asyncio.shield(running.outcome), STOP_WAIT_SECONDS)
    return Stopped(
        conversation_id=conversation_id,
        message_id=outcome.message_id if outcome.committed else None,
        status=outcome.status if outcome.committed else "nothing to keep",
    )
