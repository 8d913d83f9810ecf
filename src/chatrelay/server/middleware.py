"""Pure ASGI middleware (never BaseHTTPMiddleware near a streaming route)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("chatrelay.server")

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_request_id: ContextVar[str] = ContextVar("chatrelay_request_id", default="-")


def current_request_id() -> str:
    """The id of the request being served; it is also the correlation id of 5xx answers."""
    return _request_id.get()


class RequestIdMiddleware:
    """Accepts a sane `X-Request-ID` or makes one, exposes it to logs, echoes it back.

    It also answers unexpected exceptions itself (500 + correlation id): Starlette's own
    catch-all runs outside every middleware, after this request id is gone.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = supplied if _SAFE_ID.match(supplied) else uuid.uuid4().hex
        token = _request_id.set(request_id)

        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error (correlation_id=%s)", request_id)
            if response_started:
                raise  # too late for a clean answer: let the server drop the connection
            await _send_internal_error(send_with_id, request_id)
        finally:
            _request_id.reset(token)


async def _send_internal_error(send: Send, request_id: str) -> None:
    body = json.dumps({"detail": "internal server error", "correlation_id": request_id}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
