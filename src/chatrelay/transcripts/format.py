"""The transcript format: one JSON file per HTTP exchange, versioned.

A transcript holds the request (method, path, headers with secrets redacted, body), the
response (status, headers) and every block of its event stream: the SSE `id`, the `data`
exactly as sent, the time offset in ms since the request started, and the block's raw text,
so `to_sse_bytes()` gives back the stream byte for byte. Blocks without data (comments such as
keep-alive pings) are kept for that exactness; clients never dispatch them, and `check` and
`validate` skip them.

A raw `.sse` capture (curl -N, a browser's network tab) imports with `from_sse_bytes()`.
"""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, JsonValue

FORMAT_VERSION = 1
REDACTED = "[redacted]"
SSE_MEDIA_TYPE = "text/event-stream"

_SECRET_HEADER = re.compile(r"auth|cookie|token|secret|api[-_]?key|password|session", re.I)
_NOISE_HEADERS = frozenset(
    {
        # Transport details, or different on every run: recording them would only add noise.
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "accept-encoding",
        "user-agent",
        "date",
        "server",
        # CORS answers depend on the caller's Origin, not on the stream (and replay adds its own).
        "vary",
    }
)
_LINE = re.compile(r"([^\r\n]*)(\r\n|\r|\n)")


def clean_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased names, transport noise dropped, every secret replaced by `[redacted]`."""
    cleaned: dict[str, str] = {}
    for raw_name, value in headers:
        name = raw_name.lower()
        if name in _NOISE_HEADERS or name.startswith("access-control-"):
            continue
        cleaned[name] = REDACTED if _SECRET_HEADER.search(name) else value
    return dict(sorted(cleaned.items()))  # one order, whatever order the client sent


class RecordedRequest(BaseModel):
    """The request of an exchange."""

    method: str = "POST"
    path: str
    """Path and query string, relative to the server's base URL."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Lower-cased; secrets (Authorization, Cookie, X-Api-Key...) are `[redacted]`."""
    body: JsonValue = None
    """The JSON body; None when there was none or it was not JSON (see `raw_body`)."""
    raw_body: str | None = None
    """A body that is not JSON, as text."""

    def body_bytes(self) -> bytes:
        if self.raw_body is not None:
            return self.raw_body.encode()
        return b"" if self.body is None else json.dumps(self.body).encode()

    @classmethod
    def of(
        cls, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> RecordedRequest:
        request = cls(method=method, path=path, headers=clean_headers(headers))
        if body:
            try:
                request.body = json.loads(body)
            except ValueError:
                request.raw_body = body.decode(errors="replace")
        return request


class RecordedResponse(BaseModel):
    """The response of an exchange, up to its body."""

    status: int = 200
    headers: dict[str, str] = Field(default_factory=lambda: {"content-type": SSE_MEDIA_TYPE})
    body: str | None = None
    """The body of a response that is not an event stream (an error answer)."""

    @property
    def is_stream(self) -> bool:
        return self.headers.get("content-type", "").startswith(SSE_MEDIA_TYPE)


class RecordedEvent(BaseModel):
    """One block of the stream: an event, or a comment (a keep-alive ping) when `data` is None."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    """The data lines, joined with newlines, exactly as sent."""
    offset_ms: int = 0
    """Milliseconds from the start of the request to the block's arrival."""
    raw: str | None = None
    """The block's exact text, blank line included; None in a hand-written file."""

    def text(self) -> str:
        if self.raw is not None:
            return self.raw
        lines = [f"event: {self.event}"] if self.event is not None else []
        lines += [f"id: {self.id}"] if self.id is not None else []
        if self.data is not None:
            lines += [f"data: {line}" for line in self.data.split("\n")]
        return "\r\n".join(lines) + "\r\n\r\n"


class Transcript(BaseModel):
    """One exchange: a request and its (streamed) response."""

    version: Literal[1] = 1
    user: str | None = None
    """Whom the request was made for, when known: `check` mints a token for this user."""
    request: RecordedRequest | None = None
    """None for a stream imported from a raw `.sse` capture."""
    response: RecordedResponse = Field(default_factory=RecordedResponse)
    events: list[RecordedEvent] = Field(default_factory=list)
    tail: str = ""
    """Whatever followed the last complete block (a stream cut off mid-event)."""

    def data_events(self) -> list[RecordedEvent]:
        """The blocks a client dispatches as events (comments and empty blocks left out)."""
        return [event for event in self.events if event.data is not None]

    def to_sse_bytes(self) -> bytes:
        """The stream exactly as it was received."""
        return ("".join(event.text() for event in self.events) + self.tail).encode()

    @classmethod
    def from_sse_bytes(cls, raw: bytes, request: RecordedRequest | None = None) -> Transcript:
        """Import a raw stream; time offsets are unknown, so all 0."""
        reader = SseReader()
        events = [block.event(0) for block in reader.feed(raw, final=True)]
        return cls(request=request, events=events, tail=reader.tail)


class Block:
    """A complete SSE block as received, parsed per the WHATWG event-stream rules."""

    def __init__(self, raw: str, first: bool) -> None:
        self.raw = raw
        self.id: str | None = None
        self.name: str | None = None
        data: list[str] = []
        for index, match in enumerate(_LINE.finditer(raw)):
            line = match.group(1)
            if first and index == 0:
                line = line.removeprefix("\ufeff")  # a byte order mark is not part of a field
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                data.append(value)
            elif field == "id" and "\0" not in value:
                self.id = value
            elif field == "event":
                self.name = value
        self.data = "\n".join(data) if data else None

    def event(self, offset_ms: int) -> RecordedEvent:
        return RecordedEvent(
            id=self.id, event=self.name, data=self.data, offset_ms=offset_ms, raw=self.raw
        )


class SseReader:
    """Splits a byte stream, fed in arbitrary chunks, into complete blocks."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._pending = ""
        self._blocks_seen = 0

    @property
    def tail(self) -> str:
        return self._pending

    def feed(self, chunk: bytes, *, final: bool = False) -> list[Block]:
        self._pending += self._decoder.decode(chunk, final=final)
        text = self._pending
        # A chunk may end between the \r and \n of one line break: wait for the next byte.
        limit = len(text) if final or not text.endswith("\r") else len(text) - 1
        blocks: list[Block] = []
        start = 0
        for match in _LINE.finditer(text, 0, limit):
            if match.group(1) == "":  # a blank line ends a block
                blocks.append(Block(text[start : match.end()], first=self._blocks_seen == 0))
                self._blocks_seen += 1
                start = match.end()
        self._pending = text[start:]
        return blocks


def load(path: Path) -> Transcript:
    """A transcript file (`.json`), or a raw stream capture (any other suffix, e.g. `.sse`)."""
    if path.suffix == ".json":
        return Transcript.model_validate_json(path.read_bytes())
    return Transcript.from_sse_bytes(path.read_bytes())


def dump(transcript: Transcript) -> str:
    return transcript.model_dump_json(indent=2, exclude_none=True) + "\n"


def save(transcript: Transcript, path: Path) -> None:
    if path.suffix == ".json":
        path.write_text(dump(transcript), encoding="utf-8")
    else:
        path.write_bytes(transcript.to_sse_bytes())
