"""One signed-in WebSocket (`/api/{user_id}/ws`): each client frame answered as its HTTP
route answers it, several at once, on the one socket.

The answers are the routes' own (`chat_stream`, `chatkit_answer`, `resume_stream`,
`stop_turn`, `answer_for`): this module only frames them. Nothing here owns a turn:

- A closed socket is not a stop. Its streams end (and free their stream slots); their turns
  run on in the registry and are committed, and can be resumed.
- Reading never waits on writing. Every frame is answered in a task of its own, so the
  socket is always read: a `cancel` gets through while streams are blocked, and uvicorn
  keeps answering pings (it stops reading a socket whose app stops reading).
- A slow reader never grows memory. Frames go out one at a time (`_send`); uvicorn's
  websockets-sansio protocol makes a send wait while the peer reads nothing. So each stream
  holds at most one frame waiting to be sent, and one batch of the turn's log (at most
  `MAX_BATCH_ITEMS`); everything else stays in the log, where the stream reads on from
  once the socket drains.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from contextlib import suppress
from typing import Any, assert_never

from pydantic import ValidationError
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from chatrelay.chatkit import REQUEST_TYPES
from chatrelay.logs import request_id_var
from chatrelay.runtime import Runtime
from chatrelay.schemas.text import has_lone_surrogate, lone_surrogate_error
from chatrelay.schemas.websocket import (
    CLIENT_FRAME,
    FRAME_TYPES,
    AuthFrame,
    CancelFrame,
    ChatFrame,
    DoneFrame,
    ErrorFrame,
    ResumeFrame,
)
from chatrelay.server.errors import ErrorAnswer, answer_for
from chatrelay.server.routes.chat import chat_stream
from chatrelay.server.routes.chatkit import chatkit_answer, http_base_url
from chatrelay.server.routes.conversations import resume_stream, sequence_id, stop_turn
from chatrelay.server.streams import Stream
from chatrelay.turns import Invalid, InvalidFields

logger = logging.getLogger("chatrelay.server")

MESSAGE_TOO_BIG = 1009
SHORT_REQUESTS_IN_FLIGHT = 32
"""Frames a socket may have unanswered besides its streams (which its user's
`MAX_STREAMS_PER_USER` bounds); more are refused with 429 until some are answered."""


class Gone(Exception):
    """The socket is closed: nothing more can be sent on it."""


class FrameTooLarge(Exception):
    """A frame over `MAX_BODY_BYTES` (uvicorn closes on those before the app sees them; this
    is the same rule under any other server)."""


def frame_text(message: Message, max_bytes: int) -> str | None:
    """A received message's text (None for a binary frame); `FrameTooLarge` over `max_bytes`."""
    text: str | None = message.get("text")
    size = (
        len(text.encode("utf-8", "surrogatepass"))
        if text is not None
        else len(message.get("bytes") or b"")
    )
    if size > max_bytes:
        raise FrameTooLarge(f"frames are limited to {max_bytes} bytes")
    return text


def frame_object(text: str | None) -> dict[str, Any]:
    """A frame's JSON object: `Invalid` or `InvalidFields` (invalid JSON) for anything else,
    as the HTTP routes refuse a body."""
    if text is None:
        raise Invalid("frames must be JSON text, not binary")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:  # as a body that does not parse: 422 json_invalid
        error = {"type": "json_invalid", "loc": ("frame", exc.pos), "msg": "JSON decode error"}
        raise InvalidFields([{**error, "input": None, "ctx": {"error": exc.msg}}]) from None
    if not isinstance(body, dict):
        raise Invalid("a frame must be a JSON object with a `type`")
    return body


def take_ref(body: dict[str, Any]) -> str | None:
    """Take the frame's `ref` out (every answer echoes it); `InvalidFields` unless it is a
    string, or missing."""
    ref = body.pop("ref", None)
    if ref is not None and (not isinstance(ref, str) or has_lone_surrogate(ref)):
        error = {"type": "string_type", "loc": ("frame", "ref"), "msg": "ref must be a string"}
        raise InvalidFields([{**error, "input": None}])
    return ref


def check_text(body: dict[str, Any]) -> None:
    """`InvalidFields` for a lone surrogate anywhere in the frame (no store can hold one)."""
    if (found := lone_surrogate_error(body, ("frame",))) is not None:
        raise InvalidFields([found])


def result_frame(ref: str | None, body_json: str) -> str:
    """A `result` frame around a body already encoded (as HTTP would send it)."""
    return f'{{"type":"result","ref":{json.dumps(ref)},"body":{body_json}}}'


def event_prefix(ref: str | None, conversation_id: str) -> str:
    """What every event frame of one stream starts with: `prefix + id + ',"event":' + data +
    "}"` is its `EventFrame`, the event's JSON (shared by every reader) never parsed again."""
    conversation = json.dumps(conversation_id)
    return f'{{"type":"event","ref":{json.dumps(ref)},"conversation_id":{conversation},"id":'


def error_frame(ref: str | None, answer: ErrorAnswer) -> str:
    retry = answer.headers.get("Retry-After")
    return ErrorFrame(
        ref=ref,
        status=answer.status,
        detail=answer.body["detail"],
        correlation_id=answer.body.get("correlation_id") or request_id_var.get(),
        retry_after=int(retry) if retry is not None else None,
    ).model_dump_json()


def sendable(text: str) -> str:
    """Text a frame can carry: a lone surrogate (a provider may send one, escaped) cannot be
    UTF-8, so it becomes "?", as on an SSE stream."""
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


class Session:
    """The frames of one socket of one user, answered until it closes."""

    def __init__(self, websocket: WebSocket, runtime: Runtime, user_id: str) -> None:
        self._socket = websocket
        self._runtime = runtime
        self._user = user_id
        self._max_in_flight = runtime.settings.max_streams_per_user + SHORT_REQUESTS_IN_FLIGHT
        self._answering: set[asyncio.Task[None]] = set()
        self._streaming: set[asyncio.Task[Any]] = set()
        self._sending = asyncio.Lock()
        self._gone = False

    async def serve(self) -> None:
        """Read frames until the socket closes, then end its streams (never their turns) and
        wait for the answers still under way (a stop waits for its commit)."""
        max_bytes = self._runtime.settings.max_body_bytes
        try:
            while (message := await self._socket.receive())["type"] != "websocket.disconnect":
                text = frame_text(message, max_bytes)
                if len(self._answering) >= self._max_in_flight:
                    busy = ErrorAnswer(429, {"detail": "too many frames in flight on this socket"})
                    await self._send(error_frame(None, busy))
                    continue
                task = asyncio.create_task(self._answer(text))
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)
        except FrameTooLarge as exc:
            await self._close(MESSAGE_TOO_BIG, str(exc))
        except Gone:
            pass
        finally:
            self._gone = True
            for stream in self._streaming:
                stream.cancel()
            if self._answering:
                await asyncio.wait(set(self._answering))

    async def _answer(self, text: str | None) -> None:
        """Answer one frame: its events then `done`, a `result`, or an `error`."""
        request_id_var.set(uuid.uuid4().hex)  # this task's logs and turns: its correlation id
        ref: str | None = None
        try:
            body = frame_object(text)
            ref = take_ref(body)
            check_text(body)
            await self._dispatch(ref, body)
        except Gone:
            return
        except Exception as exc:
            answer = answer_for(exc)
            if answer is None:
                logger.exception("websocket frame failed (correlation_id=%s)", request_id_var.get())
                answer = ErrorAnswer(500, {"detail": "internal server error"})
            try:
                await self._send(error_frame(ref, answer))
            except Gone:
                return

    async def _dispatch(self, ref: str | None, body: dict[str, Any]) -> None:
        kind = body.get("type")
        if isinstance(kind, str) and kind in REQUEST_TYPES:
            base_url = http_base_url(self._socket)
            answer = await chatkit_answer(self._runtime, self._user, body, base_url)
            if isinstance(answer, Stream):
                await self._stream(ref, answer)
            else:
                await self._send(result_frame(ref, answer))
            return
        if not isinstance(kind, str) or kind not in FRAME_TYPES:
            raise Invalid(
                f"unknown frame type {kind!r}: expected chat, resume, cancel or a ChatKit "
                "request type"
            )
        try:
            frame = CLIENT_FRAME.validate_python(body)
        except ValidationError as exc:
            raise InvalidFields([dict(e) for e in exc.errors(include_url=False)]) from exc
        await self._serve_frame(ref, frame)

    async def _serve_frame(
        self, ref: str | None, frame: AuthFrame | ChatFrame | ResumeFrame | CancelFrame
    ) -> None:
        runtime, user = self._runtime, self._user
        match frame:
            case ChatFrame():
                await self._stream(ref, await chat_stream(runtime, user, frame))
            case ResumeFrame(conversation_id=conversation_id, last_event_id=last):
                after = sequence_id(None if last is None else str(last))
                stream = await resume_stream(runtime, user, conversation_id, after)
                if stream is None:  # HTTP's 204: no running turn, the last one's expired
                    await self._send(result_frame(ref, "null"))
                else:
                    await self._stream(ref, stream)
            case CancelFrame(conversation_id=conversation_id):
                stopped = await stop_turn(runtime, user, conversation_id)
                await self._send(result_frame(ref, stopped.model_dump_json()))
            case AuthFrame():
                raise Invalid("this socket is signed in already")
            case _:
                assert_never(frame)

    async def _stream(self, ref: str | None, stream: Stream) -> None:
        """Send the stream's events, then `done`; its stream slot is freed however it ends.
        Cancelled when the socket closes: the turn behind it runs on."""
        this = asyncio.current_task()
        assert this is not None
        self._streaming.add(this)
        try:
            if self._gone:
                return
            prefix = event_prefix(ref, stream.conversation_id)
            async for batch in stream.batches:
                for sequence, data in batch:
                    await self._send(f'{prefix}{sequence},"event":{data}}}')
            await self._send(
                DoneFrame(ref=ref, conversation_id=stream.conversation_id).model_dump_json()
            )
        finally:
            self._streaming.discard(this)
            if stream.slot is not None:
                stream.slot.release()

    async def _send(self, text: str) -> None:
        """One frame, after the one before it; waits while the peer reads nothing."""
        async with self._sending:
            if self._gone:
                raise Gone
            try:
                await self._socket.send_text(sendable(text))
            except (WebSocketDisconnect, RuntimeError):
                # Starlette raises RuntimeError for a send after the close, and uvicorn for
                # one in the moment between its keep-alive closing and the disconnect.
                self._gone = True
                raise Gone from None

    async def _close(self, code: int, reason: str) -> None:
        async with self._sending:
            if not self._gone:
                self._gone = True
                with suppress(WebSocketDisconnect, RuntimeError):  # the client left first
                    await self._socket.close(code, close_reason(reason))


def close_reason(text: str) -> str:
    """A close frame's reason: at most 123 bytes of UTF-8 (RFC 6455, 5.5.1)."""
    return text.encode("utf-8")[:123].decode("utf-8", "ignore")
