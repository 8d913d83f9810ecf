"""The hot path's hand-written encodings must be byte-identical to the models' own."""

from __future__ import annotations

import pytest
from sse_starlette import ServerSentEvent

from chatrelay.schemas import chatkit as ck
from chatrelay.server.sse import encode_event, frame, text_delta_encoder

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


@pytest.mark.parametrize("delta", TRICKY)
def test_text_delta_fast_path_matches_the_model(delta: str) -> None:
    encode = text_delta_encoder("msg_abc")
    assert encode(delta) == encode_event(ck.text_delta("msg_abc", delta))


@pytest.mark.parametrize("data", ['{"type":"x"}', '{"delta":"é 😀"}'])
@pytest.mark.parametrize("sequence", [0, 7, 12345])
def test_frames_match_sse_starlette(sequence: int, data: str) -> None:
    assert frame(sequence, data) == ServerSentEvent(data=data, id=str(sequence)).encode()


def test_a_lone_surrogate_does_not_break_the_stream() -> None:
    """Regression guard: a provider may send an escaped lone surrogate; UTF-8 can't hold it."""
    data = text_delta_encoder("msg_abc")("broken \ud800 pair")
    assert "broken ? pair" in frame(1, data).decode("utf-8")
