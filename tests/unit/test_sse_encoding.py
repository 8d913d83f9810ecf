"""The hot path's hand-written encodings must be byte-identical to the models' own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sse_starlette import ServerSentEvent

from chatrelay.chatkit import ChatKitEncoder, encode_event
from chatrelay.chatkit import events as ck
from chatrelay.server.sse import frame
from chatrelay.turns import AssistantStarted, TextDelta, TurnStarted

TRICKY = [
    "",
    "plain ",
    'quotes " and \\ backslashes',
    "new\nline\ttab\rreturn",
    "control \x00 \x01 \x1f \x7f",
    "unicode é ß 漢字 😀 \u2028 \u2029",
    "html </script> & 'single'",
    "emoji 👩‍👩‍👧 and combining e\u0301",
]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _replying_encoder() -> ChatKitEncoder:
    """An encoder whose reply `msg_abc` has started and shown its first delta."""
    encoder = ChatKitEncoder()
    encoder.encode(TurnStarted("thr_1", False, None, offer_stop=False, retry=True))
    encoder.encode(AssistantStarted("msg_abc", NOW))
    encoder.encode(TextDelta("first "))  # opens the reply's item
    return encoder


@pytest.mark.parametrize("delta", TRICKY)
def test_text_delta_fast_path_matches_the_model(delta: str) -> None:
    (encoded,) = _replying_encoder().encode(TextDelta(delta))
    assert encoded == encode_event(ck.text_delta("msg_abc", delta))


@pytest.mark.parametrize("data", ['{"type":"x"}', '{"delta":"é 😀"}'])
@pytest.mark.parametrize("sequence", [0, 7, 12345])
def test_frames_match_sse_starlette(sequence: int, data: str) -> None:
    assert frame(sequence, data) == ServerSentEvent(data=data, id=str(sequence)).encode()


def test_a_lone_surrogate_does_not_break_the_stream() -> None:
    """Regression guard: a provider may send an escaped lone surrogate; UTF-8 can't hold it."""
    (data,) = _replying_encoder().encode(TextDelta("broken \ud800 pair"))
    assert "broken ? pair" in frame(1, data).decode("utf-8")
