"""The MCP todo server: five tools over the `tasks` table, always acting for one verified user.

The user is never a tool argument. Over streamable HTTP (`/mcp`) it is the user of the bearer
token, which `BearerAuth` put in the ASGI scope; in-process (the agent's own calls) it is the
`acting_user` set from the turn's `TurnContext` by `InProcessMCPServer`.

A task's `id`, in arguments and results, is its number in the user's own list (1, 2, ...,
never reused after a delete), not the row's key: another user's number is simply not found,
like one never given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay import __version__
from chatrelay.schemas.text import NoLoneSurrogates
from chatrelay.store import Task, transaction
from chatrelay.store.repositories import TaskRepository
from chatrelay.store.tables import as_utc

SCOPE_USER_KEY = "chatrelay_user_id"
"""Where `BearerAuth` leaves the verified user in `scope["state"]`."""

_acting_user: ContextVar[str | None] = ContextVar("chatrelay_acting_user", default=None)

# A lone surrogate is a tool error, never a row: over /mcp the SDK's JSON parser refuses the
# body already, but the agent's own calls arrive as decoded Python strings.
Title = Annotated[
    str, Field(min_length=1, max_length=200, description="Short task title"), NoLoneSurrogates
]
Description = Annotated[
    str, Field(max_length=1000, description="Optional details"), NoLoneSurrogates
]
TaskId = Annotated[
    int, Field(ge=1, description="The task's number in the user's list, as list_tasks shows it")
]


@contextmanager
def acting_as(user_id: str) -> Iterator[None]:
    """In-process calls made inside this block act for `user_id`."""
    token = _acting_user.set(user_id)
    try:
        yield
    finally:
        _acting_user.reset(token)


class TaskOut(BaseModel):
    """A task as the tools return it."""

    id: int
    """The task's number in the user's list (`Task.number`), what `task_id` arguments take."""
    title: str
    description: str | None
    completed: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        return cls(
            id=task.number,
            title=task.title,
            description=task.description,
            completed=task.completed,
            created_at=as_utc(task.created_at),
            updated_at=as_utc(task.updated_at),
        )


class TaskList(BaseModel):
    """The user's tasks, oldest first."""

    status: Literal["all", "pending", "completed"]
    count: int
    tasks: list[TaskOut]


def _user_of(ctx: Context) -> str:
    request = ctx.request_context.request
    if request is not None:
        # Over HTTP only the verified token counts, never `_meta` or a context variable.
        user_id = request.scope.get("state", {}).get(SCOPE_USER_KEY)
    else:
        user_id = _acting_user.get()
    if not isinstance(user_id, str) or not user_id:
        raise ToolError("not authenticated")
    return user_id


async def _owned(repository: TaskRepository, task_id: int) -> Task:
    """The user's task, or a tool error the model can relay (another user's number included)."""
    task = await repository.get(task_id)
    if task is None:
        raise ToolError(f"task {task_id} not found; use list_tasks to see the valid ids")
    return task


def build_todo_server(sessions: async_sessionmaker[AsyncSession]) -> MCPServer:
    """The MCP server with its five tools, writing through `sessions`."""
    server = MCPServer(
        "chatrelay-todo",
        version=__version__,  # `initialize`'s serverInfo.version: the SDK's default is ""
        instructions="Manage the signed-in user's todo list. Task ids come from list_tasks.",
    )

    @server.tool(description="Add a task to the user's todo list.")
    async def add_task(
        ctx: Context, title: Title, description: Description | None = None
    ) -> TaskOut:
        async with transaction(sessions) as db:
            task = await TaskRepository(db, _user_of(ctx)).add(title.strip(), description)
            return TaskOut.of(task)

    @server.tool(description="List the user's tasks: all of them, only pending or only completed.")
    async def list_tasks(
        ctx: Context, status: Literal["all", "pending", "completed"] = "all"
    ) -> TaskList:
        async with transaction(sessions) as db:
            tasks = await TaskRepository(db, _user_of(ctx)).by_status(status)
            return TaskList(status=status, count=len(tasks), tasks=[TaskOut.of(t) for t in tasks])

    @server.tool(description="Mark one of the user's tasks as completed.")
    async def complete_task(ctx: Context, task_id: TaskId) -> TaskOut:
        async with transaction(sessions) as db:
            repository = TaskRepository(db, _user_of(ctx))
            task = await _owned(repository, task_id)
            return TaskOut.of(await repository.update(task, completed=True))

    @server.tool(description="Change the title and/or description of one of the user's tasks.")
    async def update_task(
        ctx: Context,
        task_id: TaskId,
        title: Title | None = None,
        description: Description | None = None,
    ) -> TaskOut:
        if title is None and description is None:
            raise ToolError("nothing to update: give a new title or description")
        async with transaction(sessions) as db:
            repository = TaskRepository(db, _user_of(ctx))
            task = await _owned(repository, task_id)
            updated = await repository.update(
                task, title=title.strip() if title else None, description=description
            )
            return TaskOut.of(updated)

    @server.tool(description="Delete one of the user's tasks for good.")
    async def delete_task(ctx: Context, task_id: TaskId) -> TaskOut:
        async with transaction(sessions) as db:
            repository = TaskRepository(db, _user_of(ctx))
            task = await _owned(repository, task_id)
            deleted = TaskOut.of(task)
            await repository.delete(task)
            return deleted

    return server
