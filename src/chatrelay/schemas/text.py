"""Text every store and every wire can hold: no lone UTF-16 surrogates.

JSON may escape half of a surrogate pair (`"\\ud800"`); Python decodes it to a `str` that no
UTF-8 encoder accepts, so it would fail later, in the database or in a response, as a 500.
Refuse it where the text comes in instead (422, with where it was). A whole pair
(`"\\ud83d\\ude00"`) decodes to one code point (an emoji) and is fine.

Pydantic alone is no guard: it refuses a lone surrogate in a constrained `str` but lets one
through a plain `str`, a dict key or an `Any` value, which then reach the store.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, BeforeValidator, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

LONE_SURROGATE = "text must not contain a lone UTF-16 surrogate (invalid Unicode)"


def has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def lone_surrogate_error(value: Any, loc: tuple[str | int, ...]) -> dict[str, Any] | None:
    """A pydantic-style error for the first string (key or value) in `value` holding a lone
    surrogate, or None."""
    if isinstance(value, str):
        return _error(loc) if has_lone_surrogate(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and has_lone_surrogate(key):
                # The key goes into the answer, so it is escaped: the answer must encode.
                return _error((*loc, escaped(key)))
            if (found := lone_surrogate_error(item, (*loc, str(key)))) is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (found := lone_surrogate_error(item, (*loc, index))) is not None:
                return found
    return None


def _error(loc: tuple[str | int, ...]) -> dict[str, Any]:
    return {"type": "string_unicode", "loc": loc, "msg": LONE_SURROGATE, "input": None}


def escaped(text: str) -> str:
    """`text` with each lone surrogate written as its escape (`\\ud800`), so it encodes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def refuse_lone_surrogates(value: Any) -> Any:
    """A pydantic before-validator: `value` unchanged, or a `string_unicode` error at the first
    string in it (a key or a value, however deep) that holds a lone surrogate.

    It raises a `ValidationError`, which pydantic-core merges into the caller's errors with
    their location prefixed (pydantic/pydantic-core#510): a `ValueError` could only name the
    field, not the metadata key three levels down.
    """
    if (error := lone_surrogate_error(value, ())) is None:
        return value
    line = InitErrorDetails(
        type=PydanticCustomError(error["type"], LONE_SURROGATE), loc=error["loc"], input=None
    )
    raise ValidationError.from_exception_data("lone surrogate", [line])


NoLoneSurrogates = BeforeValidator(refuse_lone_surrogates)
"""For what is not a `TextBody` field (a tool's parameters): `Annotated[str, Field(...),
NoLoneSurrogates]`, constraints first, or pydantic checks their lengths as a sequence's."""


class TextBody(BaseModel):
    """A request body whose every string (field values, dict keys and values at any depth, and
    the names of unknown fields) is checked before its fields are: no other error can echo a
    lone surrogate into a 422 that could not be encoded, and none reaches a route."""

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        return refuse_lone_surrogates(data)


def encodable_errors(errors: Any) -> Any:
    """Field errors (JSON-ready) as a 422 can send them: an `input` holding a lone surrogate is
    dropped (None, as ours are), any other string holding one is escaped."""
    if isinstance(errors, list):
        return [encodable_errors(error) for error in errors]
    if not isinstance(errors, dict):
        return _encodable(errors)
    return {
        key: None if key == "input" and lone_surrogate_error(value, ()) else _encodable(value)
        for key, value in errors.items()
    }


def _encodable(value: Any) -> Any:
    if isinstance(value, str):
        return escaped(value)
    if isinstance(value, list | tuple):
        return [_encodable(item) for item in value]
    if isinstance(value, dict):
        return {_encodable(key): _encodable(item) for key, item in value.items()}
    return value
