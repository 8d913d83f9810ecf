"""`TRANSCRIPT_DIR`: record every event-stream response of the app to a transcript file."""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatrelay.transcripts.format import (
    RecordedEvent,
    RecordedRequest,
    RecordedResponse,
    SseReader,
    Transcript,
    clean_headers,
    dump,
)

logger = logging.getLogger("chatrelay.transcripts")

_USER_IN_PATH = re.compile(r"^/api/([^/]+)/")


def _headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]


class _Exchange:
    """One request as the app sees it, and its response if that is an event stream."""

    def __init__(self, scope: Scope) -> None:
        self.started = time.monotonic()
        self.scope = scope
        self.body = bytearray()
        self.response: RecordedResponse | None = None
        self.reader = SseReader()
        self.events: list[RecordedEvent] = []

    def offset_ms(self) -> int:
        return round((time.monotonic() - self.started) * 1000)

    def transcript(self) -> Transcript:
        assert self.response is not None
        query = self.scope.get("query_string", b"").decode("latin-1")
        path = self.scope["path"] + (f"?{query}" if query else "")
        user = _USER_IN_PATH.match(self.scope["path"])
        events = self.events + [
            block.event(self.offset_ms()) for block in self.reader.feed(b"", final=True)
        ]
        return Transcript(
            user=user.group(1) if user else None,
            request=RecordedRequest.of(
                self.scope["method"], path, _headers(self.scope["headers"]), bytes(self.body)
            ),
            response=self.response,
            events=events,
            tail=self.reader.tail,
        )


class TranscriptMiddleware:
    """Writes `<directory>/<UTC time>-<id>.json` for each `text/event-stream` response.

    Secrets in request headers (Authorization, Cookie...) are redacted before anything is
    written; other responses pass through untouched. Off unless TRANSCRIPT_DIR is set.
    """

    def __init__(self, app: ASGIApp, directory: Path) -> None:
        self.app = app
        self.directory = anyio.Path(directory)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(scope)

        async def receive_and_keep() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                exchange.body += message.get("body", b"")
            return message

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                response = RecordedResponse(
                    status=message["status"],
                    headers=clean_headers(_headers(message.get("headers", []))),
                )
                exchange.response = response if response.is_stream else None
            elif message["type"] == "http.response.body" and exchange.response is not None:
                offset = exchange.offset_ms()
                chunk = message.get("body", b"")
                exchange.events += [block.event(offset) for block in exchange.reader.feed(chunk)]
            await send(message)

        try:
            await self.app(scope, receive_and_keep, send_and_record)
        finally:
            if exchange.response is not None:
                # Shielded: a stream ended by a cancellation is still worth its transcript.
                with anyio.CancelScope(shield=True):
                    await self._write(exchange.transcript())

    async def _write(self, transcript: Transcript) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.json"
        try:
            await self.directory.mkdir(parents=True, exist_ok=True)
            await path.write_text(dump(transcript), encoding="utf-8")
        except OSError:
            logger.exception("could not write the transcript %s", path)
