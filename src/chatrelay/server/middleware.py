"""Pure ASGI middleware (never BaseHTTPMiddleware near a streaming route)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatrelay.logs import request_id_var

logger = logging.getLogger("chatrelay.server")

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


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
        token = request_id_var.set(request_id)

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
            request_id_var.reset(token)


async def send_json(
    send: Send,
    status: int,
    content: dict[str, Any],
    headers: Mapping[str, str] | None = None,
) -> None:
    """A whole JSON response, for pure ASGI code that answers before any app does."""
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(
                    (k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in (headers or {}).items()
                ),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_internal_error(send: Send, request_id: str) -> None:
    await send_json(send, 500, {"detail": "internal server error", "correlation_id": request_id})


class BodyLimitMiddleware:
    """413 for request bodies over `max_bytes`, by Content-Length or as the bytes arrive.

    The body is read up front (chat bodies are small) so an oversized one is refused before
    the app sees any of it; the app then reads it from memory.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, own_limit_prefix: str | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.own_limit_prefix = own_limit_prefix
        """Routes under this path stream their bodies with a limit of their own (uploads)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in ("GET", "HEAD", "OPTIONS")
            or (self.own_limit_prefix and scope["path"].startswith(self.own_limit_prefix))
        ):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_too_large(send, self.max_bytes)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending it all
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_too_large(send, self.max_bytes)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body_sent = False

        async def buffered_receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # afterwards: disconnect detection, as before

        await self.app(scope, buffered_receive, send)


async def _send_too_large(send: Send, max_bytes: int) -> None:
    await send_json(send, 413, {"detail": f"request body larger than {max_bytes} bytes"})
