"""A turn's tool calls: the records stored with the reply, and the workflow item that shows
them live in ChatKit (added as soon as the model decides to call, completed with the result)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from chatkit.types import CustomTask
from pydantic import BaseModel

from chatrelay.schemas import chatkit as ck

RESULT_PREVIEW_CHARS = 300


def workflow_id_for(assistant_message_id: str) -> str:
    """The workflow item's id, derived so a reload rebuilds the same id."""
    return "wf_" + assistant_message_id.removeprefix("msg_")


def result_preview(result: Any) -> str:
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    if len(text) <= RESULT_PREVIEW_CHARS:
        return text
    return text[: RESULT_PREVIEW_CHARS - 1] + "…"


class ToolActivity:
    def __init__(
        self,
        assistant_message_id: str,
        thread_id: str,
        publish: Callable[[BaseModel], None],
        reply_time: Callable[[], datetime],
    ) -> None:
        self._item_id = workflow_id_for(assistant_message_id)
        self._thread_id = thread_id
        self._publish = publish
        self._reply_time = reply_time
        self._records: dict[str, dict[str, Any]] = {}
        self._tasks: list[CustomTask] = []
        self._created_at: datetime | None = None
        self._open = False

    @property
    def calls(self) -> list[dict[str, Any]]:
        """`{"tool_name", "parameters", "result"}` per call, in the order they were made."""
        return list(self._records.values())

    def started(self, call_id: str, tool_name: str) -> None:
        if call_id in self._records:
            return
        self._records[call_id] = {"tool_name": tool_name, "parameters": {}, "result": None}
        task = ck.tool_task(tool_name, done=False)
        self._tasks.append(task)
        self._publish(ck.tool_progress(tool_name))
        if self._created_at is None:
            self._created_at = self._reply_time()  # as reloaded: the reply's timestamp
            self._open = True
            self._publish(ck.workflow_added(self._item_id, self._thread_id, self._created_at, task))
        else:
            self._publish(ck.workflow_task_added(self._item_id, len(self._tasks) - 1, task))

    def called(self, call_id: str, tool_name: str, parameters: dict[str, Any]) -> None:
        self.started(call_id, tool_name)  # a provider may skip the early signal
        self._records[call_id]["parameters"] = parameters

    def returned(self, call_id: str, result: Any) -> None:
        record = self._records.get(call_id)
        if record is None:
            return
        record["result"] = result
        index = list(self._records).index(call_id)
        task = ck.tool_task(record["tool_name"], done=True, content=result_preview(result))
        self._tasks[index] = task
        if self._open:
            self._publish(ck.workflow_task_updated(self._item_id, index, task))

    def close(self) -> None:
        """End the workflow item (before the assistant's text, or when the turn ends)."""
        if not self._open or self._created_at is None:
            return
        self._open = False
        item = ck.workflow_item(self._item_id, self._thread_id, self._created_at, self._tasks)
        self._publish(ck.item_done(item))
