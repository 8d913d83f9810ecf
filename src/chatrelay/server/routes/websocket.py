"""`GET /api/{user_id}/ws`: the chat API over a WebSocket, signed in as the chat endpoint is.

A client sends `Authorization: Bearer <JWT>` with the upgrade request or, from a browser
(which cannot set headers on a WebSocket), a first frame `{"type": "auth", "token": ...}`
within `WS_AUTH_TIMEOUT_SECONDS`. Never in the URL: URLs end up in logs. A token that does
not verify closes the socket with 4401, one of another user with 4403, each with the reason;
while the issuer's key set has never been fetched, 1013 (try again later).
Then `chatrelay.server.websocket.Session` answers its frames.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from typing import Annotated

from fastapi import APIRouter, Path, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from chatrelay.runtime import Runtime
from chatrelay.schemas.websocket import AuthFrame
from chatrelay.server.deps import AuthorizationHeader, Context, authenticate
from chatrelay.server.errors import Forbidden, ServiceUnavailable, Unauthorized
from chatrelay.server.websocket import (
    MESSAGE_TOO_BIG,
    FrameTooLarge,
    Session,
    check_text,
    close_reason,
    frame_object,
    frame_text,
    result_frame,
    take_ref,
)
from chatrelay.turns import TurnRefused

router = APIRouter(tags=["chat"])

UNAUTHORIZED = 4401
"""Close code: a missing or invalid token (HTTP's 401)."""
FORBIDDEN = 4403
"""Close code: the token belongs to another user than the path's (HTTP's 403)."""
TRY_AGAIN_LATER = 1013
"""Close code: the token cannot be checked yet (HTTP's 503: no key set fetched so far)."""


@router.websocket("/api/{user_id}/ws")
async def chat_socket(
    websocket: WebSocket,
    context: Context,
    user_id: Annotated[str, Path(min_length=1, max_length=255)],
    authorization: AuthorizationHeader = None,
) -> None:
    # Accepted first: only an open socket can carry a close code and its reason.
    await websocket.accept()
    try:
        user = await _sign_in(websocket, context, user_id, authorization)
    except (Unauthorized, Forbidden, FrameTooLarge, ServiceUnavailable) as exc:
        code = next(code for kind, code in _CLOSE_CODES.items() if isinstance(exc, kind))
        with suppress(WebSocketDisconnect):  # the client may have left meanwhile
            await websocket.close(code, close_reason(str(exc)))
        return
    except WebSocketDisconnect:
        return
    if user is not None:  # else the client left before signing in
        await Session(websocket, context, user).serve()


_CLOSE_CODES: dict[type[Exception], int] = {
    Unauthorized: UNAUTHORIZED,
    Forbidden: FORBIDDEN,
    FrameTooLarge: MESSAGE_TOO_BIG,
    ServiceUnavailable: TRY_AGAIN_LATER,
}


async def _sign_in(
    websocket: WebSocket, runtime: Runtime, user_id: str, authorization: str | None
) -> str | None:
    """The verified user, by the upgrade's `Authorization` or the first frame; None if the
    client left first. `Unauthorized` / `Forbidden` as on the chat endpoint."""
    if authorization is not None:
        return await authenticate(runtime, authorization, user_id)
    timeout = runtime.settings.ws_auth_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            message = await websocket.receive()
    except TimeoutError:
        raise Unauthorized(
            f"no Authorization header, and no auth frame within {timeout:g} s"
        ) from None
    if message["type"] == "websocket.disconnect":
        return None
    frame = _auth_frame(frame_text(message, runtime.settings.max_body_bytes))
    user = await authenticate(runtime, f"Bearer {frame.token}", user_id)
    await websocket.send_text(result_frame(frame.ref, json.dumps({"user_id": user})))
    return user


def _auth_frame(text: str | None) -> AuthFrame:
    expected = 'the first frame must be {"type": "auth", "token": "<JWT>"}'
    try:
        body = frame_object(text)
        ref = take_ref(body)
        check_text(body)
        if body.get("type") != "auth":
            raise Unauthorized(expected)
        return AuthFrame.model_validate({**body, "ref": ref})
    except (TurnRefused, ValidationError):
        raise Unauthorized(expected) from None
