"""Turn events as JSON-ready dicts and back, for a store that keeps them outside the process
(a Redis stream shared by several instances): `{"type": "TextDelta", "text": "Hi "}`."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, cast

from chatrelay.turns.events import EVENT_TYPES, TextDelta, TurnEnded, TurnEvent
from chatrelay.turns.spec import Failure, TurnOutcome, Usage

_BY_NAME = {kind.__name__: kind for kind in EVENT_TYPES}
_TIMES = {"created_at", "conversation_created_at"}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Failure):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def to_dict(event: TurnEvent) -> dict[str, Any]:
    if type(event) is TextDelta:  # most events: skip the generic walk
        return {"type": "TextDelta", "text": event.text}
    data = cast(dict[str, Any], _plain(event))
    return {"type": type(event).__name__, **data}


def _times(data: dict[str, Any]) -> dict[str, Any]:
    return {
        key: datetime.fromisoformat(value) if key in _TIMES and value is not None else value
        for key, value in data.items()
    }


def _outcome(data: dict[str, Any]) -> TurnOutcome:
    fields = _times(data)
    fields["usage"] = Usage(**fields["usage"])
    fields["failure"] = None if fields["failure"] is None else Failure[fields["failure"]]
    return TurnOutcome(**fields)


def from_dict(data: dict[str, Any]) -> TurnEvent:
    """The event `to_dict` made; `KeyError`/`TypeError` for anything else."""
    fields = dict(data)
    kind = _BY_NAME[fields.pop("type")]
    if kind is TurnEnded:
        return TurnEnded(_outcome(fields["outcome"]))
    fields = _times(fields)
    if "failure" in fields:
        fields["failure"] = Failure[fields["failure"]]
    return kind(**fields)
