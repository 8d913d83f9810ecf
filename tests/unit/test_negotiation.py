from __future__ import annotations

import pytest

from chatrelay.server.errors import NotAcceptable
from chatrelay.server.negotiation import Representation, negotiate

JSON, SSE = Representation.JSON, Representation.SSE


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("application/*", JSON),
        ("text/event-stream", SSE),
        ("text/*", SSE),
        ("TEXT/EVENT-STREAM", SSE),
        ("text/event-stream, application/json;q=0.5", SSE),
        ("application/json;q=0.4, text/event-stream;q=0.8", SSE),
        ("application/json, text/event-stream", JSON),  # a tie goes to JSON
        ("text/event-stream;q=0.5, */*;q=0.1", SSE),
        ("image/png, */*;q=0.1", JSON),
        ("*/*, application/json;q=0", SSE),  # the more specific range wins for JSON
        ("text/event-stream; charset=utf-8", SSE),
        ("application/json;q=abc, text/event-stream;q=0.1", SSE),  # a bad q counts as 0
    ],
)
def test_negotiate(accept: str | None, expected: Representation) -> None:
    assert negotiate(accept) is expected


@pytest.mark.parametrize(
    "accept", ["text/html", "image/*", "application/json;q=0", "*/*;q=0", "text/event-stream;q=0"]
)
def test_only_unsupported_types_are_refused(accept: str) -> None:
    with pytest.raises(NotAcceptable):
        negotiate(accept)
