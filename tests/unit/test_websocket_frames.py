"""The WebSocket's server frames, built as strings around already-encoded event JSON, are the
documented frame models byte for byte; and text no frame could carry is made sendable."""

from __future__ import annotations

import json

from chatrelay.schemas.websocket import SERVER_FRAME, DoneFrame, EventFrame, ResultFrame
from chatrelay.server.errors import ErrorAnswer, retry_after
from chatrelay.server.websocket import (
    close_reason,
    error_frame,
    event_prefix,
    result_frame,
    sendable,
)

EVENT = '{"type":"thread.item.updated","item_id":"msg_1","update":{"delta":"caf\\u00e9 \\"q\\""}}'


def test_an_event_frame_is_its_model_with_the_event_json_inside() -> None:
    for ref in (None, "r-1", 'quote " and \\ and é'):
        built = f'{event_prefix(ref, "thr_1")}7,"event":{EVENT}}}'
        model = EventFrame(ref=ref, conversation_id="thr_1", id=7, event=json.loads(EVENT))
        assert json.loads(built) == json.loads(model.model_dump_json())
        SERVER_FRAME.validate_json(built)


def test_result_and_error_frames_are_their_models() -> None:
    built = result_frame("r", '{"data":[],"has_more":false}')
    assert json.loads(built) == json.loads(
        ResultFrame(ref="r", body={"data": [], "has_more": False}).model_dump_json()
    )
    assert json.loads(result_frame(None, "null")) == {"type": "result", "ref": None, "body": None}
    busy = ErrorAnswer(409, {"detail": "conversation busy"}, retry_after(0.2))
    error = json.loads(error_frame("r", busy))
    assert (error["status"], error["detail"], error["retry_after"]) == (409, "conversation busy", 1)
    fault = ErrorAnswer(503, {"detail": "database unavailable", "correlation_id": "abc"})
    assert json.loads(error_frame(None, fault))["correlation_id"] == "abc"
    SERVER_FRAME.validate_json(DoneFrame(ref=None, conversation_id="thr_1").model_dump_json())


def test_a_lone_surrogate_becomes_a_question_mark_as_on_sse() -> None:
    assert sendable("plain") == "plain"
    assert sendable("café") == "café"
    assert sendable("bad \ud800 half") == "bad ? half"


def test_a_close_reason_fits_a_close_frame() -> None:
    reason = close_reason("invalid token: " + "é" * 100)
    assert len(reason.encode()) <= 123
    assert reason.startswith("invalid token: é")
