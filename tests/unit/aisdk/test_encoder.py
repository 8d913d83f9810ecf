"""Turn events → AI SDK UI message stream parts (`ai` 7.x's `uiMessageChunkSchema`; the Node
tests check every part against the schema itself)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chatrelay.aisdk import AI_SDK, DONE, AiSdkEncoder, stored_reply_parts
from chatrelay.turns import (
    AssistantFinished,
    AssistantStarted,
    Failure,
    StoredMessage,
    StoredReply,
    TextDelta,
    TitleSet,
    ToolCallArguments,
    ToolCallFinished,
    ToolCallStarted,
    TurnEnded,
    TurnEvent,
    TurnFailed,
    TurnOutcome,
    TurnStarted,
    Usage,
    UserMessageAccepted,
)
from chatrelay.turns.log import EventLog

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TRICKY = ["", 'quotes " and \\', "new\nline\ttab", "control \x00 \x1f", "é 漢字 😀 \u2028"]


def _outcome(failure: Failure | None = None, status: str = "completed") -> TurnOutcome:
    return TurnOutcome("msg_a", "Hi there", NOW, [], Usage(), status, failure, committed=True)


def _parts(events: list[TurnEvent]) -> list[Any]:
    encoder = AiSdkEncoder()
    items = [item for event in events for item in encoder.encode(event)]
    assert items[-1] == DONE, "the stream ends with [DONE]"
    return [json.loads(item) for item in items[:-1]]


def _turn(*model: TurnEvent, failure: Failure | None = None) -> list[TurnEvent]:
    head: list[TurnEvent] = [
        TurnStarted("thr_1", True, NOW, offer_stop=True, retry=False),
        UserMessageAccepted("msg_u", "hello", None, NOW),
        AssistantStarted("msg_a", NOW),
    ]
    tail: list[TurnEvent] = [AssistantFinished("msg_a", "Hi there", "completed", NOW)]
    if failure is not None and failure is not Failure.STOPPED:
        tail = [TurnFailed(failure, f"{failure.value} (correlation id: c1)")]
    return [*head, *model, *tail, TitleSet("hello"), TurnEnded(_outcome(failure))]


def test_a_plain_turn() -> None:
    assert _parts(_turn(TextDelta("Hi "), TextDelta("there"))) == [
        {"type": "start", "messageId": "msg_a"},
        {"type": "start-step"},
        {"type": "text-start", "id": "msg_a_t1"},
        {"type": "text-delta", "id": "msg_a_t1", "delta": "Hi "},
        {"type": "text-delta", "id": "msg_a_t1", "delta": "there"},
        {"type": "text-end", "id": "msg_a_t1"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop"},
    ]


def test_a_tool_call_between_texts_closes_the_first_text() -> None:
    parts = _parts(
        _turn(
            TextDelta("Adding. "),
            ToolCallStarted("call_1", "add_task"),
            ToolCallArguments("call_1", "add_task", {"title": "milk"}),
            ToolCallFinished("call_1", {"task_id": 1}),
            TextDelta("Done."),
        )
    )
    assert [part["type"] for part in parts] == [
        "start",
        "start-step",
        "text-start",
        "text-delta",
        "text-end",
        "tool-input-start",
        "tool-input-available",
        "tool-output-available",
        "text-start",
        "text-delta",
        "text-end",
        "finish-step",
        "finish",
    ]
    start, available, output = parts[5], parts[6], parts[7]
    assert start == {
        "type": "tool-input-start",
        "toolCallId": "call_1",
        "toolName": "add_task",
        "dynamic": True,
    }
    assert available["input"] == {"title": "milk"}
    assert output == {
        "type": "tool-output-available",
        "toolCallId": "call_1",
        "output": {"task_id": 1},
    }
    assert parts[2]["id"] != parts[8]["id"], "each text run is its own part"


def test_arguments_without_a_start_still_start_the_call_once() -> None:
    parts = _parts(
        _turn(
            ToolCallArguments("call_1", "list_tasks", {}),
            ToolCallArguments("call_1", "list_tasks", {}),
            ToolCallFinished("call_1", []),
            ToolCallFinished("call_unknown", []),
        )
    )
    kinds = [part["type"] for part in parts]
    assert kinds.count("tool-input-start") == 1
    assert kinds.count("tool-input-available") == 1
    assert kinds.count("tool-output-available") == 1


def test_a_model_error_before_any_output() -> None:
    events: list[TurnEvent] = [
        TurnStarted("thr_1", False, None, offer_stop=True, retry=False),
        UserMessageAccepted("msg_u", "hello", None, NOW),
        TurnFailed(Failure.MODEL, "the model is unavailable (correlation id: c1)"),
        TurnEnded(_outcome(Failure.MODEL, "incomplete")),
    ]
    assert _parts(events) == [
        {"type": "start"},
        {"type": "start-step"},
        {"type": "error", "errorText": "the model is unavailable (correlation id: c1)"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "error"},
    ]


def test_an_error_after_text_ends_the_text_first() -> None:
    parts = _parts(_turn(TextDelta("partial"), failure=Failure.TIMEOUT))
    kinds = [part["type"] for part in parts]
    assert kinds[-4:] == ["text-end", "error", "finish-step", "finish"]
    assert parts[-1]["finishReason"] == "error"


def test_a_stop_finishes_as_interrupted() -> None:
    events = _turn(TextDelta("partial"), failure=Failure.STOPPED)
    parts = _parts(events)
    assert parts[-1] == {"type": "finish", "finishReason": "interrupted"}
    assert "error" not in [part["type"] for part in parts]


@pytest.mark.parametrize("delta", TRICKY)
def test_the_delta_fast_path_is_json(delta: str) -> None:
    (part,) = [p for p in _parts(_turn(TextDelta(delta))) if p["type"] == "text-delta"]
    assert part == {"type": "text-delta", "id": "msg_a_t1", "delta": delta}


async def _read(log: EventLog, after: int) -> list[tuple[int, str]]:
    return [pair async for batch in log.batches(AI_SDK, after) for pair in batch]


async def test_a_resume_after_an_id_reads_the_same_items_on() -> None:
    """Resume by position: items keep their ids, whenever a reader comes."""
    log = EventLog()
    for event in _turn(TextDelta("a"), ToolCallArguments("c", "t", {}), TextDelta("b")):
        log.publish(event)
    log.close()
    whole = await _read(log, -1)
    assert [sequence for sequence, _ in whole] == list(range(len(whole)))
    assert await _read(log, 4) == whole[5:]
    assert whole[-1] == (len(whole) - 1, DONE)


def _stored(content: str, tool_calls: list[dict[str, Any]], status: str) -> StoredReply:
    def message(id_: str, role: str, text: str, calls: list[dict[str, Any]]) -> StoredMessage:
        return StoredMessage(id_, "thr_1", role, text, status, calls, None, "r1", None, None, NOW)

    return StoredReply(
        message("msg_u", "user", "hi", []), message("msg_a", "assistant", content, tool_calls)
    )


def test_a_stored_reply_as_a_stream() -> None:
    call = {"tool_name": "add_task", "parameters": {"title": "milk"}, "result": {"task_id": 1}}
    items = stored_reply_parts(_stored("Added.", [call], "completed"))
    assert items[-1] == DONE
    parts = [json.loads(item) for item in items[:-1]]
    assert parts[0] == {"type": "start", "messageId": "msg_a"}
    assert [p["type"] for p in parts[2:5]] == [
        "tool-input-start",
        "tool-input-available",
        "tool-output-available",
    ]
    assert {"type": "text-delta", "id": "msg_a_t1", "delta": "Added."} in parts
    assert parts[-1] == {"type": "finish", "finishReason": "stop"}


def test_a_stored_stopped_reply_without_text() -> None:
    parts = [json.loads(item) for item in stored_reply_parts(_stored("", [], "cancelled"))[:-1]]
    assert [p["type"] for p in parts] == ["start", "start-step", "finish-step", "finish"]
    assert parts[-1]["finishReason"] == "interrupted"
