from __future__ import annotations

import json

import pytest

from chatrelay.agents import ToolCallIntent
from chatrelay.agents.todo_commands import confirm_todo_result, recognize_todo_command


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("add task buy milk", ToolCallIntent("add_task", {"title": "buy milk"})),
        ("Add a task to call mom.", ToolCallIntent("add_task", {"title": "call mom"})),
        ("add task: water plants", ToolCallIntent("add_task", {"title": "water plants"})),
        ("list tasks", ToolCallIntent("list_tasks", {"status": "all"})),
        ("show my tasks", ToolCallIntent("list_tasks", {"status": "all"})),
        ("Show my pending tasks", ToolCallIntent("list_tasks", {"status": "pending"})),
        ("list completed tasks", ToolCallIntent("list_tasks", {"status": "completed"})),
        ("complete task 3", ToolCallIntent("complete_task", {"task_id": 3})),
        ("mark 3 done", ToolCallIntent("complete_task", {"task_id": 3})),
        ("delete task #12", ToolCallIntent("delete_task", {"task_id": 12})),
        (
            "rename task 4 to buy oat milk",
            ToolCallIntent("update_task", {"task_id": 4, "title": "buy oat milk"}),
        ),
    ],
)
def test_commands_become_tool_calls(message: str, intent: ToolCallIntent) -> None:
    assert recognize_todo_command(message) == intent


@pytest.mark.parametrize(
    "message", ["hello", "what can you do?", "complete task three", "delete all tasks", ""]
)
def test_anything_else_is_not_a_command(message: str) -> None:
    assert recognize_todo_command(message) is None


def test_confirmations_are_built_from_the_result() -> None:
    task = {"id": 7, "title": "buy milk", "completed": True}
    assert confirm_todo_result("add_task", json.dumps(task)) == "Added task 7: buy milk."
    assert confirm_todo_result("complete_task", json.dumps(task)).startswith("Marked task 7")
    listing = json.dumps({"tasks": [task, {"id": 8, "title": "x", "completed": False}]})
    assert confirm_todo_result("list_tasks", listing) == "Your tasks:\n[x] 7: buy milk\n[ ] 8: x"
    assert confirm_todo_result("list_tasks", json.dumps({"tasks": []})) == "You have no tasks."


def test_a_tool_error_is_relayed_and_other_tools_are_left_alone() -> None:
    error = "Error executing tool delete_task: task 9 not found"
    assert confirm_todo_result("delete_task", error) == f"Sorry, that didn't work: {error}"
    assert confirm_todo_result("weather", '{"temp": 3}') is None
