"""Reading SSE bodies in tests, and checking every event against ChatKit's own types."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chatkit.types import ThreadStreamEvent
from pydantic import TypeAdapter

CHATKIT_EVENT: TypeAdapter[ThreadStreamEvent] = TypeAdapter(ThreadStreamEvent)


@dataclass(frozen=True)
class Frame:
    id: str | None
    data: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.data["type"])

    @property
    def update_type(self) -> str | None:
        update = self.data.get("update")
        return str(update["type"]) if isinstance(update, dict) else None


def parse_sse(body: str) -> list[Frame]:
    """Split an SSE body into frames; comments (pings) are ignored."""
    frames: list[Frame] = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        event_id: str | None = None
        data_lines: list[str] = []
        for line in block.split("\n"):
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data_lines.append(line[5:].removeprefix(" "))
        if data_lines:
            frames.append(Frame(event_id, json.loads("\n".join(data_lines))))
    return frames


def validate_chatkit(frames: list[Frame]) -> None:
    """Every frame must be a `ThreadStreamEvent`, validated strictly, and re-encode to itself."""
    for frame in frames:
        raw = json.dumps(frame.data)
        event = CHATKIT_EVENT.validate_json(raw, strict=True)
        again = json.loads(event.model_dump_json(by_alias=True, exclude_none=True))
        assert again == frame.data, f"{frame.type} does not round-trip through chatkit.types"


def kinds(frames: list[Frame]) -> list[str]:
    """`thread.item.updated` frames are named by their update type, for readable asserts."""
    return [frame.update_type or frame.type for frame in frames]


def turn_kinds(deltas: int, *, new_thread: bool = True, error: bool = False) -> list[str]:
    """The `kinds()` of a turn that streamed `deltas` text deltas: ChatKit's order.

    A new thread gets its title (`thread.updated`) once its first turn is committed.
    """
    return [
        *(["thread.created"] if new_thread else []),
        "thread.item.done",
        "thread.item.added",
        "assistant_message.content_part.added",
        *["assistant_message.content_part.text_delta"] * deltas,
        "assistant_message.content_part.done",
        "thread.item.done",
        *(["thread.updated"] if new_thread else []),
        *(["error"] if error else []),
    ]


def done_item(frames: list[Frame], item_type: str = "assistant_message") -> dict[str, Any]:
    """The item of the last `thread.item.done` of `item_type`."""
    for frame in reversed(frames):
        item = frame.data.get("item")
        if frame.type == "thread.item.done" and isinstance(item, dict):
            if item.get("type") == item_type:
                return item
    raise AssertionError(f"no finished {item_type} item")
