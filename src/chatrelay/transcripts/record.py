"""Recording an exchange with an HTTP client (`chatrelay transcript record`, `check`, tests)."""

from __future__ import annotations

import time

import httpx
from pydantic import JsonValue

from chatrelay.transcripts.format import (
    REDACTED,
    RecordedEvent,
    RecordedRequest,
    RecordedResponse,
    SseReader,
    Transcript,
    clean_headers,
)


def chat_request(user: str, message: str) -> RecordedRequest:
    """A streamed turn on the chat endpoint."""
    return RecordedRequest(
        method="POST",
        path=f"/api/{user}/chat",
        headers={"accept": "text/event-stream", "content-type": "application/json"},
        body={"message": message},
    )


def envelope_request(envelope: JsonValue) -> RecordedRequest:
    """A ChatKit request envelope (`{"type", "params"}`) sent to `/chatkit`."""
    return RecordedRequest(
        method="POST",
        path="/chatkit",
        headers={"accept": "text/event-stream", "content-type": "application/json"},
        body=envelope,
    )


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


async def record(
    client: httpx.AsyncClient,
    request: RecordedRequest,
    *,
    authorization: str | None = None,
    user: str | None = None,
) -> Transcript:
    """Send `request` (redacted headers left out, `authorization` added) and record it all.

    The transcript's request is what was really sent, redacted again.
    """
    headers = {name: value for name, value in request.headers.items() if value != REDACTED}
    if authorization is not None:
        headers["authorization"] = authorization
    body = request.body_bytes()
    started = time.monotonic()
    async with client.stream(
        request.method, request.path, headers=headers, content=body or None
    ) as response:
        recorded = RecordedResponse(
            status=response.status_code, headers=clean_headers(response.headers.multi_items())
        )
        events: list[RecordedEvent] = []
        tail = ""
        if recorded.is_stream:
            reader = SseReader()
            async for chunk in response.aiter_bytes():
                offset = _elapsed_ms(started)
                events += [block.event(offset) for block in reader.feed(chunk)]
            offset = _elapsed_ms(started)
            events += [block.event(offset) for block in reader.feed(b"", final=True)]
            tail = reader.tail
        else:
            recorded.body = (await response.aread()).decode(errors="replace")
    sent = RecordedRequest.of(
        request.method, request.path, response.request.headers.multi_items(), body
    )
    return Transcript(user=user, request=sent, response=recorded, events=events, tail=tail)
