"""Text every store and every wire can hold: no lone UTF-16 surrogates.

JSON may escape half of a surrogate pair (`"\\ud800"`); Python decodes it to a `str` that no
UTF-8 encoder accepts, so it would fail later, in the database or in a response, as a 500.
Refuse it where the text comes in instead (422, with where it was).
"""

from __future__ import annotations

from typing import Any

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
                return _error((*loc, key.encode("utf-8", "backslashreplace").decode()))
            if (found := lone_surrogate_error(item, (*loc, str(key)))) is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (found := lone_surrogate_error(item, (*loc, index))) is not None:
                return found
    return None


def _error(loc: tuple[str | int, ...]) -> dict[str, Any]:
    return {"type": "string_unicode", "loc": loc, "msg": LONE_SURROGATE, "input": None}


def check_text(value: Any) -> Any:
    """A pydantic validator: `value` unchanged, or ValueError if it holds a lone surrogate."""
    if lone_surrogate_error(value, ()) is not None:
        raise ValueError(LONE_SURROGATE)
    return value
