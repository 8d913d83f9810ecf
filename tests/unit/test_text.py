"""`schemas/text.py`: lone surrogates found wherever they hide, and 422s that always encode."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from chatrelay.schemas.text import (
    LONE_SURROGATE,
    TextBody,
    encodable_errors,
    lone_surrogate_error,
)


class _Body(TextBody):
    name: str
    tags: dict[str, Any] = {}


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"name": "a\ud800"}, ("name",)),
        ({"name": "a", "tags": {"k": [1, {"deep": "\udc00"}]}}, ("tags", "k", 1, "deep")),
        ({"name": "a", "tags": {"\ud800": 1}}, ("tags", "\\ud800")),
        ({"\ud800": "a"}, ("\\ud800",)),  # before "name" is found missing
    ],
)
def test_a_text_body_names_where_the_lone_surrogate_is(
    data: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    with pytest.raises(ValidationError) as raised:
        _Body.model_validate(data)
    assert raised.value.errors(include_url=False) == [
        {"type": "string_unicode", "loc": loc, "msg": LONE_SURROGATE, "input": None}
    ]


def test_a_surrogate_pair_is_one_code_point_and_valid() -> None:
    emoji = json.loads('"\\ud83d\\ude00"')
    assert emoji == "\U0001f600"
    assert _Body.model_validate({"name": emoji, "tags": {emoji: emoji}}).name == emoji
    assert lone_surrogate_error({"a": [emoji]}, ()) is None


def test_pydantic_alone_lets_a_lone_surrogate_through() -> None:
    """Why TextBody exists: a plain `str`, a key and an `Any` value take one unchecked."""

    class Plain(BaseModel):
        name: str
        tags: dict[str, Any]

    plain = Plain.model_validate({"name": "\ud800", "tags": {"\ud800": "\ud800"}})
    assert plain.name == "\ud800"


def test_encodable_errors_drop_inputs_and_escape_strings_holding_one() -> None:
    errors = [
        {"type": "dict_type", "loc": ["body", "params"], "msg": "x", "input": "\ud800"},
        {"type": "extra_forbidden", "loc": ["body", "\ud800"], "msg": "y", "input": 1},
        {"type": "model_type", "loc": ["body"], "msg": "m\udfff", "input": {"a": ["\ud800"]}},
        {"type": "missing", "loc": ["body", "a"], "msg": "z", "input": {"b": 2}},
    ]
    encodable = encodable_errors(errors)

    assert json.dumps(encodable, ensure_ascii=False).encode("utf-8")  # no UnicodeEncodeError
    assert encodable == [
        {"type": "dict_type", "loc": ["body", "params"], "msg": "x", "input": None},
        {"type": "extra_forbidden", "loc": ["body", "\\ud800"], "msg": "y", "input": 1},
        {"type": "model_type", "loc": ["body"], "msg": "m\\udfff", "input": None},
        {"type": "missing", "loc": ["body", "a"], "msg": "z", "input": {"b": 2}},
    ]
