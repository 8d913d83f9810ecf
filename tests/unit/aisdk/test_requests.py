"""What `DefaultChatTransport` posts, as a turn spec: only the newest user message is input."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from chatrelay.aisdk import ChatRequest, new_text, request_id, turn_spec
from chatrelay.schemas.chat import MAX_MESSAGE_CHARS
from chatrelay.turns import Invalid


def _body(*messages: dict[str, Any], **fields: Any) -> ChatRequest:
    return ChatRequest.model_validate({"id": "chat_1", "messages": list(messages), **fields})


def _user(text: str, id_: str = "m_u2", **extra: Any) -> dict[str, Any]:
    return {"id": id_, "role": "user", "parts": [{"type": "text", "text": text}], **extra}


def test_only_the_newest_user_message_is_input() -> None:
    made_up = {"id": "m_a1", "role": "assistant", "parts": [{"type": "text", "text": "lies"}]}
    request = _body(_user("old", "m_u1"), made_up, _user("new"), trigger="submit-message")
    assert new_text(request) == "new"
    assert request_id(request) == "m_u2"


def test_message_id_is_the_request_id_when_sent() -> None:
    assert request_id(_body(_user("hi"), messageId="m_x")) == "m_x"


def test_text_parts_join_and_step_starts_are_skipped() -> None:
    message = {
        "id": "m",
        "role": "user",
        "parts": [
            {"type": "step-start"},
            {"type": "text", "text": "a"},
            {"type": "text", "text": "b"},
        ],
    }
    assert new_text(_body(message)) == "ab"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"trigger": "regenerate-message"}, "regenerate-message is not supported"),
        ({"last": {"id": "a", "role": "assistant", "parts": []}}, "must be the user's"),
        ({"last": _user("   ")}, "has no text"),
        ({"last": _user("x" * (MAX_MESSAGE_CHARS + 1))}, "longer than"),
        (
            {"last": {"id": "m", "role": "user", "parts": [{"type": "file", "url": "data:,x"}]}},
            "parts[0]: only text parts",
        ),
    ],
)
def test_unsupported_input_is_refused_clearly(body: dict[str, Any], detail: str) -> None:
    last = body.pop("last", _user("hi"))
    with pytest.raises(Invalid, match=detail.replace("[", r"\[").replace("]", r"\]")):
        new_text(_body(last, **body))


@pytest.mark.parametrize(
    "body",
    [
        {"id": "chat_1", "messages": []},
        {"id": "", "messages": [_user("hi")]},
        {"id": "a/b", "messages": [_user("hi")]},
        {"id": "x" * 65, "messages": [_user("hi")]},
        {"id": "chat_1", "messages": [_user("hi")], "trigger": "other"},
        {"id": "chat_1", "messages": [{"id": "m", "role": "tool", "parts": []}]},
        {"messages": [_user("hi")]},
    ],
)
def test_malformed_bodies_fail_validation(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ChatRequest.model_validate(body)


def test_a_new_chat_keeps_its_id() -> None:
    spec = turn_spec("u1", _body(_user("Hello there")), exists=False, correlation_id="c1")
    assert (spec.conversation_id, spec.new_conversation, spec.title) == (
        "chat_1",
        True,
        "Hello there",
    )
    assert spec.request_id == "m_u2"
    assert spec.conversation_created_at is not None


def test_an_existing_chat_is_the_conversation() -> None:
    spec = turn_spec("u1", _body(_user("Hello")), exists=True, correlation_id="c1")
    assert (spec.conversation_id, spec.new_conversation, spec.title) == ("chat_1", False, None)
