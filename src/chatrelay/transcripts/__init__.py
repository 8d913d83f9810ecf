"""SSE transcripts: record any stream, replay it to drive a client, check a server against it."""

from chatrelay.transcripts.check import CheckResult, Normaliser, check, diff, render
from chatrelay.transcripts.format import (
    FORMAT_VERSION,
    REDACTED,
    RecordedEvent,
    RecordedRequest,
    RecordedResponse,
    Transcript,
    dump,
    load,
    save,
)
from chatrelay.transcripts.record import chat_request, envelope_request, record
from chatrelay.transcripts.replay import replay_app
from chatrelay.transcripts.validate import problems

__all__ = [
    "FORMAT_VERSION",
    "REDACTED",
    "CheckResult",
    "Normaliser",
    "RecordedEvent",
    "RecordedRequest",
    "RecordedResponse",
    "Transcript",
    "chat_request",
    "check",
    "diff",
    "dump",
    "envelope_request",
    "load",
    "problems",
    "record",
    "render",
    "replay_app",
    "save",
]
