"""Stored messages as the AI SDK's `UIMessage`s: what `useChat` shows for a stored chat.

A reply's tool calls come first (as the turn made them, before its text), as `dynamic-tool`
parts in `output-available` state, then its text as one `text` part.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from chatrelay.aisdk.encoder import tool_call_id


class StoredRow(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def content(self) -> str: ...
    @property
    def tool_calls(self) -> list[dict[str, Any]]: ...


def ui_message(row: StoredRow) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {
            "type": "dynamic-tool",
            "toolName": str(call.get("tool_name", "")),
            "toolCallId": tool_call_id(row.id, index),
            "state": "output-available",
            "input": call.get("parameters") or {},
            "output": call.get("result"),
        }
        for index, call in enumerate(row.tool_calls if row.role == "assistant" else ())
    ]
    if row.content or not parts:
        parts.append({"type": "text", "text": row.content, "state": "done"})
    return {"id": row.id, "role": row.role, "parts": parts}


def ui_messages(rows: Iterable[StoredRow]) -> list[dict[str, Any]]:
    return [ui_message(row) for row in rows]
