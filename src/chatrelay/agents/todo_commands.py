"""What the offline model understands of the todo tools: commands in, confirmations out.

So the whole tool flow (model -> MCP tool -> model -> text) runs with no API key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from chatrelay.agents.offline import ToolCallIntent

_ADD = re.compile(r"^(?:please\s+)?add\s+(?:a\s+)?task(?:\s+to)?\s*:?\s+(?P<title>.+)$", re.I)
_LIST = re.compile(
    r"^(?:please\s+)?(?:list|show)(?:\s+me)?(?:\s+my|\s+all)?"
    r"(?:\s+(?P<status>pending|completed|done|open))?\s+tasks$",
    re.I,
)
_COMPLETE = re.compile(
    r"^(?:complete|finish)\s+task\s+#?(?P<id>\d+)$|^mark\s+#?(?P<id2>\d+)\s+(?:as\s+)?done$", re.I
)
_DELETE = re.compile(r"^(?:delete|remove)\s+task\s+#?(?P<id>\d+)$", re.I)
_RENAME = re.compile(r"^rename\s+task\s+#?(?P<id>\d+)\s+to\s+(?P<title>.+)$", re.I)
_STATUS = {"pending": "pending", "open": "pending", "completed": "completed", "done": "completed"}


def _clean(text: str) -> str:
    return " ".join(text.split()).rstrip(".!?")


def recognize_todo_command(message: str) -> ToolCallIntent | None:
    """Map a plain-language todo command to a tool call, or None."""
    text = _clean(message)
    if match := _ADD.match(text):
        return ToolCallIntent("add_task", {"title": match["title"].strip()})
    if match := _LIST.match(text):
        status = _STATUS.get((match["status"] or "").lower(), "all")
        return ToolCallIntent("list_tasks", {"status": status})
    if match := _COMPLETE.match(text):
        return ToolCallIntent("complete_task", {"task_id": int(match["id"] or match["id2"])})
    if match := _DELETE.match(text):
        return ToolCallIntent("delete_task", {"task_id": int(match["id"])})
    if match := _RENAME.match(text):
        return ToolCallIntent(
            "update_task", {"task_id": int(match["id"]), "title": match["title"].strip()}
        )
    return None


def _task_line(task: dict[str, Any]) -> str:
    mark = "x" if task.get("completed") else " "
    return f"[{mark}] {task.get('id')}: {task.get('title')}"


_CONFIRMATIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "add_task": lambda r: f"Added task {r['id']}: {r['title']}.",
    "complete_task": lambda r: f"Marked task {r['id']} as done: {r['title']}.",
    "update_task": lambda r: f"Updated task {r['id']}: {r['title']}.",
    "delete_task": lambda r: f"Deleted task {r['id']}: {r['title']}.",
    "list_tasks": lambda r: (
        "Your tasks:\n" + "\n".join(_task_line(t) for t in r["tasks"])
        if r.get("tasks")
        else "You have no tasks."
    ),
}


def confirm_todo_result(tool_name: str, output: str) -> str | None:
    """A confirmation sentence built from a todo tool's output, or None if it isn't one."""
    try:
        result = json.loads(output)
    except json.JSONDecodeError:
        return f"Sorry, that didn't work: {output}" if tool_name in _CONFIRMATIONS else None
    confirm = _CONFIRMATIONS.get(tool_name)
    if confirm is None or not isinstance(result, dict):
        return None
    try:
        return confirm(result)
    except (KeyError, TypeError):
        return None
