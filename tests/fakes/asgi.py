"""Driving the ASGI app by hand, for what an HTTP client library can't do: hang up mid-stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message


async def post_and_hang_up(
    app: ASGIApp,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    hang_up: asyncio.Event,
) -> list[Message]:
    """POST `body`; once `hang_up` is set, the client is gone (`http.disconnect`).

    Returns the messages the app sent before it noticed.
    """
    raw_body = json.dumps(body).encode()
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw_body)).encode()),
            *((name.lower().encode(), value.encode()) for name, value in headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
        "state": {},
    }
    sent: list[Message] = []
    body_delivered = False

    async def receive() -> Message:
        nonlocal body_delivered
        if not body_delivered:
            body_delivered = True
            return {"type": "http.request", "body": raw_body, "more_body": False}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def body_text(messages: list[Message]) -> str:
    return b"".join(
        m.get("body", b"") for m in messages if m["type"] == "http.response.body"
    ).decode()
