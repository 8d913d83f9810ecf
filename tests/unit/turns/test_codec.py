"""`chatrelay.turns.codec`: every turn event survives `to_dict`, JSON and `from_dict`
unchanged, for a store that keeps events outside the process. One sample (or more) per
event type: a new type without a sample fails here."""

from __future__ import annotations

import copy
import json
import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from chatrelay.turns import (
    AssistantFinished,
    AssistantStarted,
    Failure,
    ModelEvent,
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
from chatrelay.turns.codec import from_dict, to_dict
from chatrelay.turns.events import EVENT_TYPES

AT = datetime(2026, 11, 27, 14, 20, 7, 123456, tzinfo=UTC)
ELSEWHERE = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-5)))

SAMPLES: dict[type[Any], list[Any]] = {
    TurnStarted: [
        TurnStarted("thr_1", True, AT, offer_stop=True, retry=False),
        TurnStarted("thr_1", False, None, offer_stop=False, retry=True),
    ],
    UserMessageAccepted: [
        UserMessageAccepted("msg_u", "hi ☃", {"content": [{"type": "input_text"}]}, ELSEWHERE),
        UserMessageAccepted("msg_u", "", None, AT),
    ],
    AssistantStarted: [AssistantStarted("msg_a", AT)],
    ToolCallStarted: [ToolCallStarted("call_1", "add_task")],
    ToolCallArguments: [
        ToolCallArguments("call_1", "add_task", {"title": "milk", "tags": ["a"], "n": 1.5}),
        ToolCallArguments("call_2", "list_tasks", {}),
    ],
    ToolCallFinished: [
        ToolCallFinished("call_1", {"id": 7, "done": False, "note": None}),
        ToolCallFinished("call_2", [1, "two"]),
        ToolCallFinished("call_3", None),
    ],
    TextDelta: [TextDelta("Hello, "), TextDelta('\n"quoted" \x00')],
    AssistantFinished: [AssistantFinished("msg_a", "Hello", "cancelled", AT)],
    TitleSet: [TitleSet("A title…")],
    TurnFailed: [
        TurnFailed(Failure.TIMEOUT, "too long (correlation id: c)"),
        TurnFailed(Failure.STORAGE, "not saved", retryable=False),
    ],
    TurnEnded: [
        TurnEnded(
            TurnOutcome(
                message_id="msg_a",
                text="Half",
                created_at=AT,
                tool_calls=[{"tool_name": "t", "parameters": {"x": 1}, "result": {"ok": True}}],
                usage=Usage(input_tokens=10, output_tokens=2, total_tokens=12),
                status="incomplete",
                failure=Failure.MODEL,
                committed=True,
            )
        ),
        TurnEnded(TurnOutcome("msg_b", "", ELSEWHERE, [], Usage(), "completed")),
    ],
}


def test_every_event_type_has_a_sample() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES)
    assert all(SAMPLES.values())


def test_every_event_of_the_union_is_a_known_type() -> None:
    """`from_dict` knows the types of `EVENT_TYPES`: one added to the `TurnEvent` union (or
    to the model's events) without it could be written but never read back."""
    assert set(typing.get_args(TurnEvent)) == set(EVENT_TYPES)
    assert set(typing.get_args(ModelEvent)) <= set(EVENT_TYPES)
    assert len({kind.__name__ for kind in EVENT_TYPES}) == len(EVENT_TYPES)


@pytest.mark.parametrize(
    "event",
    [sample for kind in EVENT_TYPES for sample in SAMPLES.get(kind, [])],
    ids=lambda event: type(event).__name__,
)
def test_an_event_round_trips_through_a_json_dict(event: TurnEvent) -> None:
    data = to_dict(event)
    text = json.dumps(data, allow_nan=False)  # plain JSON, no custom encoder
    back = from_dict(json.loads(text))

    assert data["type"] == type(event).__name__
    assert type(back) is type(event)
    assert back == event


def test_an_outcome_keeps_its_types_through_the_round_trip() -> None:
    (event, _) = SAMPLES[TurnEnded]
    back = from_dict(json.loads(json.dumps(to_dict(event))))

    assert isinstance(back, TurnEnded)
    assert back.outcome.failure is Failure.MODEL
    assert isinstance(back.outcome.usage, Usage)
    assert back.outcome.created_at == AT and back.outcome.created_at.tzinfo is not None


def test_the_dict_names_fields_plainly() -> None:
    assert to_dict(TextDelta("Hi ")) == {"type": "TextDelta", "text": "Hi "}
    assert to_dict(TurnFailed(Failure.TIMEOUT, "m")) == {
        "type": "TurnFailed",
        "failure": "TIMEOUT",
        "message": "m",
        "retryable": True,
    }
    assert to_dict(AssistantStarted("msg_a", AT))["created_at"] == AT.isoformat()


def test_from_dict_leaves_its_argument_alone() -> None:
    for samples in SAMPLES.values():
        for event in samples:
            data = json.loads(json.dumps(to_dict(event)))
            kept = copy.deepcopy(data)
            from_dict(data)
            assert data == kept


@pytest.mark.parametrize(
    "data",
    [{"type": "NoSuchEvent"}, {"text": "no type"}, {"type": "TextDelta", "txt": "typo"}],
)
def test_anything_else_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises((KeyError, TypeError)):
        from_dict(data)
