"""The frames of `GET /api/{user_id}/ws`: JSON text, one message per frame.

Every client frame may carry a `ref` (any string), echoed by every frame answering it, so a
client running several requests at once on one socket can tell their answers apart. Besides
these, a client frame may be any ChatKit request envelope (`{"type": "threads.create",
"params": ...}`), answered as `POST /chatkit` answers it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from chatrelay.schemas.chat import ChatRequest
from chatrelay.schemas.text import TextBody

# -- client frames -----------------------------------------------------------------------


class AuthFrame(TextBody):
    """The first frame of a socket opened without `Authorization` (browsers cannot set it)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["auth"] = "auth"
    ref: str | None = None
    token: str
    """The bearer JWT, as `Authorization: Bearer <token>` would carry it."""


class ChatFrame(ChatRequest):
    """The body of `POST /api/{user_id}/chat`, answered as its event stream."""

    type: Literal["chat"] = "chat"
    ref: str | None = None


class ResumeFrame(TextBody):
    """`GET .../conversations/{conversation_id}/stream`: the events after `last_event_id`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["resume"] = "resume"
    ref: str | None = None
    conversation_id: str = Field(min_length=1, max_length=64)
    last_event_id: int | str | None = None
    """The `id` of the last event received (an SSE `Last-Event-ID`); none: from the start."""


class CancelFrame(TextBody):
    """`POST .../conversations/{conversation_id}/cancel`: stop the running turn."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["cancel"] = "cancel"
    ref: str | None = None
    conversation_id: str = Field(min_length=1, max_length=64)


ClientFrame = Annotated[
    AuthFrame | ChatFrame | ResumeFrame | CancelFrame, Field(discriminator="type")
]
CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
FRAME_TYPES = frozenset({"auth", "chat", "resume", "cancel"})
"""The client frames of chatrelay's own; any other `type` must be a ChatKit request's."""

# -- server frames -----------------------------------------------------------------------


class EventFrame(BaseModel):
    """One event of a stream: what an SSE stream sends as one `id:` + `data:` event."""

    type: Literal["event"] = "event"
    ref: str | None
    conversation_id: str
    id: int
    """The event's id in its turn (the SSE `id:`): resume after it with a `resume` frame."""
    event: dict[str, Any]
    """A ChatKit `ThreadStreamEvent`."""


class DoneFrame(BaseModel):
    """The stream answering `ref` has ended (its turn is over, or it had nothing more)."""

    type: Literal["done"] = "done"
    ref: str | None
    conversation_id: str


class ResultFrame(BaseModel):
    """A non-streaming answer: the JSON body HTTP would answer (null for HTTP's 204)."""

    type: Literal["result"] = "result"
    ref: str | None
    body: Any


class ErrorFrame(BaseModel):
    """What HTTP would answer with a 4xx or 5xx; the socket stays open."""

    type: Literal["error"] = "error"
    ref: str | None
    status: int
    detail: Any
    """HTTP's `detail`: a message, or a 422's list of field errors."""
    correlation_id: str
    """This frame's id in the server's logs."""
    retry_after: int | None = None
    """Seconds, where HTTP would send `Retry-After` (409 busy, 429, 503)."""


ServerFrame = Annotated[
    EventFrame | DoneFrame | ResultFrame | ErrorFrame, Field(discriminator="type")
]
SERVER_FRAME: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)
